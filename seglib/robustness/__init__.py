"""The artefact suite: image artefacts and scoring a model under them.
Public names: ``__all__``, each loaded on first use."""

from seglib.exports import lazy

__all__, __getattr__, __dir__ = lazy(
    __name__,
    {
        "suite": ("evaluate", "run", "update_card", "markdown"),
    },
)
