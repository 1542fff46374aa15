"""Figure style shared by every figure module: fixed colours and byte-stable SVG saving.

A leaf module (no seglib imports), so ``plots``, ``predplot`` and ``statplots`` depend on it and
never on each other in a circle.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

NET_COLORS = {"segnet": "#1f77b4", "unet": "#ff7f0e", "unet2": "#2ca02c", "effunet": "#9edae5"}
LOSS_COLORS = {"bce": "#d62728", "dice": "#9467bd", "focal": "#8c564b", "correlation": "#e377c2"}
EXTRA_COLORS = ("#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39")
SVG_RC = {"svg.hashsalt": "seglib", "svg.fonttype": "none"}


def color(key: str) -> str:
    """Fixed colour of a net or loss; other names get a stable colour from ``EXTRA_COLORS``."""
    if key in NET_COLORS:
        return NET_COLORS[key]
    if key in LOSS_COLORS:
        return LOSS_COLORS[key]
    return EXTRA_COLORS[zlib.crc32(key.encode()) % len(EXTRA_COLORS)]


def tag_data(fig: Figure, dataset: str) -> Figure:
    """Name the data in the top-left corner of ``fig`` unless it is PH2 (the study's data, whose
    figures carry no tag), so a figure of synthetic or other data never passes for PH2."""
    if dataset != "PH2":
        fig.text(0.005, 0.995, f"data: {dataset}", ha="left", va="top", fontsize=7, color="#555555")
    return fig


def save(fig: Figure, path) -> Path:
    """Write ``fig`` as byte-stable SVG (fixed hash salt, text kept as text, no metadata)."""
    path = Path(path)
    buf = io.BytesIO()
    with matplotlib.rc_context(SVG_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path
