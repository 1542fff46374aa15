"""The writable cache folder (extracted archives, decoded tensors)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Writable cache folder: env ``SEGLIB_CACHE``, else ``~/.cache/seglib`` (created)."""
    path = Path(os.environ.get("SEGLIB_CACHE") or Path.home() / ".cache" / "seglib").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
