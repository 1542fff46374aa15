"""The study's report: statistics, tables, the summary, comparisons.
Public names: ``__all__``, each loaded on first use."""

from seglib.exports import lazy

__all__, __getattr__, __dir__ = lazy(
    __name__,
    {
        "markdown": ("write_report",),
        "stats": ("mean_interval", "paired"),
        "compare": ("differences", "compare_markdown"),
    },
)
