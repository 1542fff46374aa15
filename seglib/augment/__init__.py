"""Training augmentation (basic and strong) and test-time augmentation.
Public names: ``__all__``, each loaded on first use."""

from seglib.exports import lazy

__all__, __getattr__, __dir__ = lazy(
    __name__,
    {
        "basic": ("augment",),
        "strong": ("augment_strong", "GeometryParams"),
        "tta": ("tta_logits", "dihedral", "undo_dihedral"),
    },
)
