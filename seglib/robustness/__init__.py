"""The artefact suite: image artefacts and scoring a model under them.

The names below are the public API; each loads its module on first use
(:func:`seglib.exports.lazy`)."""

from seglib.exports import lazy

_NAMES = {
    "evaluate": "suite",
    "run": "suite",
    "update_card": "suite",
    "markdown": "suite",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy(__name__, _NAMES)
