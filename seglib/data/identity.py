"""A loaded dataset's identity, cheap to compute: its name and a fingerprint of its split.

A run folder records it (``config.json``, ``data_identity``) so that other data is never mixed
into it (``seglib.engine.guard.check_config``).
"""

from __future__ import annotations

import hashlib

SAMPLES = 64
"""Bytes per image that the fingerprint reads, evenly spaced over the image."""


def fingerprint(data, split) -> str:
    """16 hex digits over the case names of each portion of ``split`` (train, val, test index
    arrays), :data:`SAMPLES` evenly spaced bytes of every image and every mask's lesion area:
    other cases, other pixels or another split give another fingerprint, without hashing the
    whole tensors."""
    h = hashlib.sha256()
    for portion, idx in zip(("train", "val", "test"), split):
        h.update(f"{portion}:{','.join(data.names[int(i)] for i in idx)}\n".encode())
    flat = data.images.reshape(len(data), -1)
    step = max(1, flat.shape[1] // SAMPLES)
    h.update(flat[:, ::step].contiguous().cpu().numpy().tobytes())
    h.update(data.masks.reshape(len(data), -1).long().sum(1).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def identity(data, split) -> dict:
    """``{"name": the dataset's source, "fingerprint": fingerprint(data, split)}``."""
    return {"name": data.source, "fingerprint": fingerprint(data, split)}
