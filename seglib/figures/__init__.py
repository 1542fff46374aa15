"""The report's figures: curves, intervals, prediction examples, worst images.
Public names: ``__all__``, each loaded on first use."""

from seglib.exports import lazy

__all__, __getattr__, __dir__ = lazy(
    __name__,
    {
        "curves": ("write_all",),
        "examples": ("write_predictions",),
        "predictions": ("plot_predictions",),
        "intervals": ("interval_figure", "per_image_figure"),
        "worst": ("worst_page",),
    },
)
