"""Inference: predict, the post-processing pipelines, export (weights, ONNX); scoring against
expert masks is ``seglib.infer.score.score`` (its module shares the name).
Public names: ``__all__``, each loaded on first use."""

from seglib.exports import lazy

__all__, __getattr__, __dir__ = lazy(
    __name__,
    {
        "options": ("InferenceOptions",),
        "score": ("ScoreOutputs",),
        "predict": (
            "load_model",
            "predict_mask",
            "predict_files",
            "PredictFailed",
            "export_weights",
        ),
        "postprocess": ("Pipeline",),
        "onnx_export": ("export_onnx", "export_checkpoint"),
    },
)
