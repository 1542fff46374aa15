"""The study's report: statistics, tables, the summary, comparisons.

The names below are the public API; each loads its module on first use
(:func:`seglib.exports.lazy`)."""

from seglib.exports import lazy

_NAMES = {
    "write_report": "markdown",
    "mean_interval": "stats",
    "paired": "stats",
    "differences": "compare",
    "compare_markdown": "compare",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy(__name__, _NAMES)
