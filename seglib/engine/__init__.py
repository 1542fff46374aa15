"""Training: run configs, the training loop, evaluation, checkpoints, the grid.

The names below are the public API; each loads its module on first use
(:func:`seglib.exports.lazy`)."""

from seglib.exports import lazy

_NAMES = {
    "RunConfig": "train",
    "fit": "train",
    "FitOptions": "options",
    "GridOptions": "options",
    "configs": "grid",
    "run_grid": "grid",
    "retest": "grid",
    "evaluate_checkpoint": "evaluate",
    "load_checkpoint": "checkpoint",
    "build_model": "checkpoint",
    "RunFailed": "failures",
    "GridFailed": "failures",
    "ConfigMismatch": "guard",
    "RunLocked": "runlock",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy(__name__, _NAMES)
