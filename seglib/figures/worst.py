"""The worst-scored images of a ``score`` run on one page: the overlays ``score --overlays DIR
--worst N`` wrote (``DIR/<rank>_<name>.png``), each titled with its case and IoU; ``score``
writes it as ``DIR/worst.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from seglib import store


def worst_page(overlays: Path, iou: dict[str, float], path: Path, cols: int = 4, px: int = 256):
    """A PNG grid of the overlays in ``overlays`` (in rank order), each titled with its case and
    its IoU from ``iou`` (case name -> IoU), shrunk to ``px`` wide; written atomically."""
    files = sorted(Path(overlays).glob("[0-9][0-9]_*.png"))
    if not files:
        raise FileNotFoundError(f"{overlays}: no overlays (run score with --overlays and --worst)")
    rows = -(-len(files) // cols)
    fig = Figure(figsize=(3 * cols, 3.1 * rows), dpi=100)
    for k, f in enumerate(files):
        ax = fig.add_subplot(rows, cols, k + 1)
        image = Image.open(f).convert("RGB")
        image = image.resize((px, max(1, round(px * image.height / image.width))))
        ax.imshow(np.asarray(image))
        name = f.stem.split("_", 1)[1]
        ax.set_title(f"{name}  IoU {iou.get(name, float('nan')):.2f}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    store.atomic_write(path, lambda f: fig.savefig(f, format="png", metadata={"Software": None}))
    return path
