"""PH2 resized to one square size, in its official layout, as a TAR archive: what a GPU machine
gets instead of the full-size archive (the course preset's 256 px: about 20 MB); the command
``seglib prepare``.

Loading the result at that size gives the same tensors as loading the full-size PH2 at it: the
images and masks are the ones :func:`seglib.data.load_ph2` decodes, and resizing to the size
they already have changes nothing.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from PIL import Image

from seglib.data.fetch import IMAGES_DIR
from seglib.data.ph2 import load_ph2
from seglib.store import atomic_write


def write_resized(source: Path, dest: Path, size: int) -> Path:
    """PH2 at ``source`` (folder or archive) resized to ``size``, written as the TAR ``dest``
    (atomically: an interrupted call leaves no partial archive)."""
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

        def write(f) -> None:
            with tarfile.open(fileobj=f, mode="w") as tar:
                tar.add(Path(tmp) / "PH2Dataset", arcname="PH2Dataset")

        atomic_write(Path(dest), write)
    return Path(dest)
