"""Training: run configs, the training loop, evaluation, checkpoints, the grid.
Public names: ``__all__``, each loaded on first use."""

from seglib.exports import lazy

__all__, __getattr__, __dir__ = lazy(
    __name__,
    {
        "train": ("RunConfig", "fit"),
        "options": ("FitOptions", "GridOptions"),
        "grid": ("configs", "run_grid", "retest"),
        "evaluate": ("evaluate_checkpoint",),
        "checkpoint": ("load_checkpoint", "build_model"),
        "failures": ("RunFailed", "GridFailed"),
        "guard": ("ConfigMismatch",),
        "runlock": ("RunLocked",),
    },
)
