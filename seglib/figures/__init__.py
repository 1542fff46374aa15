"""The report's figures: curves, intervals, prediction examples, worst images.

The names below are the public API; each loads its module on first use
(:func:`seglib.exports.lazy`)."""

from seglib.exports import lazy

_NAMES = {
    "write_all": "curves",
    "write_predictions": "examples",
    "plot_predictions": "predictions",
    "interval_figure": "intervals",
    "per_image_figure": "intervals",
    "worst_page": "worst",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy(__name__, _NAMES)
