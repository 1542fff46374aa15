"""How training runs run, apart from what they train (not saved in ``config.json``): one run's
:class:`FitOptions`, a grid's :class:`GridOptions`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FitOptions:
    """How :func:`seglib.engine.train.fit` runs (not saved in ``config.json``).

    device: "auto", "cpu", "cuda" or any torch device string. precision: "auto", "fp32", "bf16"
    or "fp16" (:func:`seglib.runtime.choose_precision`). tta: test with test-time augmentation
    (:func:`seglib.engine.evaluate.evaluate_checkpoint`). quiet: no progress bar. save_share:
    how often ``last.pt`` is written (:func:`seglib.engine.train.save_due`): None every epoch, a
    number the most of the time writing may take; "auto": every epoch on a CPU,
    :data:`seglib.engine.train.GPU_SAVE_SHARE` elsewhere. The last epoch is always written.
    """

    device: str = "auto"
    precision: str = "auto"
    tta: bool = True
    quiet: bool = False
    save_share: float | None | str = "auto"


@dataclass(frozen=True)
class GridOptions:
    """How :func:`seglib.engine.grid.run_grid` runs its runs.

    device, precision, tta: as in :class:`FitOptions`. quiet: no progress bars (None: when the
    ``CI`` environment variable is set). jobs: runs side by side (a number, or "auto":
    :func:`seglib.engine.grid.auto_jobs`). threads: each run's threads (None: the free cores
    split evenly, :func:`seglib.environ.choose_threads`). executor: "local" worker processes or
    "ray" tasks, on the cluster at ``ray_address`` (None: a local Ray).
    """

    device: str = "auto"
    precision: str = "auto"
    tta: bool = True
    quiet: bool | None = None
    jobs: int | str = 1
    threads: int | None = None
    executor: str = "local"
    ray_address: str | None = None

    def fit_options(self, quiet: bool) -> FitOptions:
        """One run's :class:`FitOptions` in this grid (``quiet`` already decided)."""
        return FitOptions(device=self.device, precision=self.precision, tta=self.tta, quiet=quiet)
