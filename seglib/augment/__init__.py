"""Training augmentation (basic and strong) and test-time augmentation.

The names below are the public API; each loads its module on first use
(:func:`seglib.exports.lazy`)."""

from seglib.exports import lazy

_NAMES = {
    "augment": "basic",
    "augment_strong": "strong",
    "GeometryParams": "strong",
    "tta_logits": "tta",
    "dihedral": "tta",
    "undo_dihedral": "tta",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy(__name__, _NAMES)
