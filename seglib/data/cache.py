"""The writable cache folder, and the decoded-tensor cache both dataset kinds use.

Decoded datasets are cached per (dataset identity, size) in ``cache_dir()/tensors`` as one
``torch.save`` dict (``images``, ``masks``, ``names``, ``source``), read back with
``weights_only=True``; a file that is missing, unreadable or of the wrong shape is rebuilt."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

FORMAT = 1  # bump when decoding changes, to invalidate cached tensors


def cache_dir() -> Path:
    """Writable cache folder: env ``SEGLIB_CACHE``, else ``~/.cache/seglib`` (created)."""
    path = Path(os.environ.get("SEGLIB_CACHE") or Path.home() / ".cache" / "seglib").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def tensor_path(kind: str, identity: str, size: int) -> Path:
    """Where the tensors of the ``kind`` ("ph2", "folder") dataset with ``identity`` (its files,
    sizes and modification times) are cached at ``size``."""
    digest = hashlib.sha256(f"{FORMAT}\n{identity}".encode()).hexdigest()[:20]
    return cache_dir() / "tensors" / f"{kind}-{digest}-{size}.pt"


def read_tensors(path: Path, size: int) -> dict | None:
    """The cached ``images``, ``masks``, ``names`` and ``source`` (default "PH2"), or None when
    absent, unreadable or not ``size`` x ``size``."""
    if not path.is_file():
        return None
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        n = len(d["names"])
        ok = d["images"].shape == (n, 3, size, size) and d["masks"].shape == (n, 1, size, size)
    except Exception:
        return None
    if not ok:
        return None
    return {"images": d["images"], "masks": d["masks"], "names": list(d["names"]),
            "source": d.get("source", "PH2")}  # fmt: skip
