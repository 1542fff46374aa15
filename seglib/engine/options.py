"""How one training run runs, apart from what it trains: :class:`FitOptions`."""

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
