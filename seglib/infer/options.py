"""How a checkpoint predicts: :class:`InferenceOptions`, shared by ``predict``, ``score`` and
the robustness suite."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InferenceOptions:
    """How :func:`seglib.infer.predict.predict_mask` runs for the commands that predict.

    device: "cpu", "cuda", "cuda:N" or "auto". precision: "auto", "fp32", "bf16" or "fp16"
    (:func:`seglib.runtime.runtime`). tta: average the 8 flips/rotations
    (:func:`seglib.augment.tta.tta_logits`). pipeline: a :mod:`seglib.infer.postprocess`
    pipeline (None: the checkpoint's).
    """

    device: str = "cpu"
    precision: str = "auto"
    tta: bool = True
    pipeline: str | None = None
