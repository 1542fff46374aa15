"""Inference: predict, the post-processing pipelines, export (weights, ONNX); scoring against
expert masks is ``seglib.infer.score.score`` (its module shares the name).

The names below are the public API; each loads its module on first use
(:func:`seglib.exports.lazy`)."""

from seglib.exports import lazy

_NAMES = {
    "InferenceOptions": "options",
    "ScoreOutputs": "score",
    "load_model": "predict",
    "predict_mask": "predict",
    "predict_files": "predict",
    "PredictFailed": "predict",
    "export_weights": "predict",
    "Pipeline": "postprocess",
    "export_onnx": "onnx_export",
    "export_checkpoint": "onnx_export",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy(__name__, _NAMES)
