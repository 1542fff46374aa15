"""Write PH2 resized to one square size, in its official layout, as a TAR archive: what a GPU
machine gets instead of the full-size archive (the course preset's 256 px: about 20 MB).

Loading the result at that size gives the same tensors as loading the full-size PH2 at it: the
images and masks are the ones ``seglib.data.load_ph2`` decodes, and resizing to the size they
already have changes nothing.

    python -m scripts.ph2_resized PH2Dataset.tar.xz gpu/PH2-256.tar --size 256
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
from pathlib import Path

from PIL import Image

from seglib.data import load_ph2
from seglib.data.fetch import IMAGES_DIR


def write_resized(source: Path, dest: Path, size: int) -> Path:
    """PH2 at ``source`` (folder or archive) resized to ``size``, as the TAR ``dest``."""
    data = load_ph2(source, size=size)
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp) / "PH2Dataset" / IMAGES_DIR
        for name, image, mask in zip(data.names, data.images, data.masks):
            for suffix, array in (("_Dermoscopic_Image", image.permute(1, 2, 0).numpy()),
                                  ("_lesion", mask[0].numpy() * 255)):  # fmt: skip
                folder = top / name / f"{name}{suffix}"
                folder.mkdir(parents=True)
                file = f"{name}.bmp" if suffix == "_Dermoscopic_Image" else f"{name}_lesion.bmp"
                Image.fromarray(array).save(folder / file)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(dest, "w") as tar:
            tar.add(Path(tmp) / "PH2Dataset", arcname="PH2Dataset")
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="PH2 folder or archive (full size)")
    p.add_argument("dest", help="TAR file to write")
    p.add_argument("--size", type=int, default=256, help="square side in pixels (default 256)")
    a = p.parse_args(argv)
    print(write_resized(Path(a.source), Path(a.dest), a.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
