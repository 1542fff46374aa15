"""Pure helpers over loaded runs (``store.load_runs``): grouping, curves, and curve statistics.

Shared by ``plots`` and ``report``; nothing here draws or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

NETS = ("segnet", "unet", "unet2", "effunet")
LOSSES = ("bce", "dice", "focal", "correlation")
# ORIGINAL report's test table (course score, 200 epochs, last epoch, 256 px): NOT our results.
ORIGINAL_SCORES = {
    ("segnet", "bce"): 0.626,
    ("segnet", "dice"): 0.710,
    ("segnet", "focal"): 0.686,
    ("segnet", "correlation"): 0.414,
    ("unet", "bce"): 0.748,
    ("unet", "dice"): 0.394,
    ("unet", "focal"): 0.720,
    ("unet", "correlation"): 0.498,
    ("unet2", "bce"): 0.468,
    ("unet2", "dice"): 0.124,
    ("unet2", "focal"): 0.604,
    ("unet2", "correlation"): 0.438,
}
ORIGINAL_EPOCHS = 200
DISPLAY = {
    "segnet": "SegNet",
    "unet": "UNet",
    "unet2": "UNet2",
    "effunet": "EffUNet",
    "effunet_lite2": "EffUNet-Lite2",
    "bce": "BCE",
    "dice": "Dice",
    "focal": "Focal",
    "correlation": "Correlation",
    "tversky": "Tversky",
    "lovasz": "Lovasz",
}


def display(key: str) -> str:
    """Display name of a net or loss, e.g. ``unet2`` -> ``UNet2``; unknown names are capitalized."""
    return DISPLAY.get(key, key.capitalize())


def cell_label(net: str, loss: str) -> str:
    """``UNet+BCE``."""
    return f"{display(net)}+{display(loss)}"


def ordered(keys: Iterable[str], known: Sequence[str]) -> list[str]:
    """Distinct ``keys``: the ``known`` ones first in their order, then the rest sorted."""
    keys = set(keys)
    return [k for k in known if k in keys] + sorted(keys - set(known))


def run_key(run: dict) -> tuple[str, str, int]:
    """``(net, loss, seed)`` of a run, from its config (falling back to the folder name)."""
    cfg = run.get("config") or {}
    parts = run["name"].split("_")
    net = cfg.get("net", parts[0])
    loss = cfg.get("loss", parts[1] if len(parts) > 1 else "?")
    return net, loss, int(cfg.get("seed", 0))


def nets_of(runs: list[dict]) -> list[str]:
    return ordered((run_key(r)[0] for r in runs), NETS)


def losses_of(runs: list[dict]) -> list[str]:
    return ordered((run_key(r)[1] for r in runs), LOSSES)


def cells(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs grouped by ``(net, loss)``, nets then losses in display order, seeds ascending."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(runs, key=lambda r: run_key(r)[2]):
        net, loss, _ = run_key(r)
        groups.setdefault((net, loss), []).append(r)
    nets, losses = nets_of(runs), losses_of(runs)
    return {(n, lo): groups[(n, lo)] for n in nets for lo in losses if (n, lo) in groups}


def _num(v) -> float:
    return math.nan if v is None else float(v)


def curve(run: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` of one history column; missing values are NaN."""
    hist = run.get("history") or []
    epochs = np.array([int(h.get("epoch", i + 1)) for i, h in enumerate(hist)], dtype=int)
    return epochs, np.array([_num(h.get(key)) for h in hist], dtype=float)


def stack(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` with values (n_runs, n_epochs) over the union of epochs, NaN-padded."""
    curves = [curve(r, key) for r in runs]
    epochs = np.unique(np.concatenate([e for e, _ in curves] or [np.zeros(0, int)]))
    out = np.full((len(runs), len(epochs)), np.nan)
    for i, (e, v) in enumerate(curves):
        out[i, np.searchsorted(epochs, e)] = v
    return epochs, out


def finished_values(runs: list[dict], metric: str = "score") -> list[float]:
    """Test ``metric`` of every finished run (runs without test.json are skipped)."""
    return [float(r["test"][metric]) for r in runs if r.get("test") and metric in r["test"]]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def cell_rank(runs: list[dict]) -> tuple[bool, float]:
    """Sort key of a cell: finished cells by mean test score first, then unfinished ones by
    their best mean val score."""
    scores = finished_values(runs, "score")
    if scores:
        return True, float(np.mean(scores))
    _, v = stack(runs, "val_score")
    best = np.nanmax(np.nanmean(v, axis=0)) if v.size and not np.isnan(v).all() else -math.inf
    return False, float(best)


def convergence_epoch(values: Sequence[float], frac: float = 0.95, epochs=None) -> int | None:
    """First epoch whose value reaches ``frac`` times the curve's maximum (None if empty/all NaN).

    Epochs are 1-based positions unless ``epochs`` is given.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0 or np.isnan(v).all():
        return None
    i = int(np.argmax(v >= frac * np.nanmax(v)))
    return int(epochs[i]) if epochs is not None else i + 1


def find_spikes(
    values: Sequence[float], drop: float = 0.1, window: int = 5, epochs=None
) -> list[tuple[int, float]]:
    """Sudden drops that recover, as ``[(epoch, depth), ...]``.

    Rule: a dip starts at the first epoch ``i`` whose value is at least ``drop`` below ``m``, the
    maximum of all earlier epochs, and ends at the first later epoch ``j`` whose value is back
    within ``drop / 2`` of ``m``. The dip is a spike when ``j - i <= window``. Reported: the epoch
    of the dip's lowest value and ``depth = m - lowest``. Dips that recover later than ``window``
    epochs, or never (e.g. a drop at the last epoch), are not spikes; the scan resumes after them.
    Epochs are 1-based positions unless ``epochs`` is given. NaN values never start a dip.
    """
    v = np.asarray(values, dtype=float)
    ep = list(epochs) if epochs is not None else list(range(1, len(v) + 1))
    spikes, i = [], 1
    while i < len(v):
        m = np.nanmax(v[:i]) if not np.isnan(v[:i]).all() else np.nan
        if not v[i] <= m - drop:
            i += 1
            continue
        j = next((j for j in range(i + 1, len(v)) if v[j] >= m - drop / 2), len(v))
        if j < len(v) and j - i <= window:
            k = i + int(np.nanargmin(v[i:j]))
            spikes.append((ep[k], float(m - v[k])))
        i = j + 1
    return spikes


def roughness(values: Sequence[float], skip: float = 0.25) -> float:
    """Mean absolute epoch-to-epoch change after the first ``skip`` fraction of epochs."""
    v = np.asarray(values, dtype=float)
    tail = v[int(len(v) * skip) :]
    d = np.abs(np.diff(tail))
    return float(np.nanmean(d)) if d.size and not np.isnan(d).all() else math.nan


def fmt_cell(values, digits: int = 3) -> str:
    """``0.873`` for one value, ``0.873 ± 0.012`` (mean ± sample std) for several, ``–`` for none."""
    if len(values) == 0:
        return "–"
    m, s = mean_std(values)
    return f"{m:.{digits}f}" if len(values) == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def fmt_ci(iv, digits: int = 3, sign: str = "") -> str:
    """An interval ``iv`` (``.low``, ``.high``) as ``[low, high]``; ``sign="+"`` signs both."""
    return f"[{iv.low:{sign}.{digits}f}, {iv.high:{sign}.{digits}f}]"


def count_of(k: int, n: int, what: str = "runs") -> str:
    """``k`` of ``n`` in words: "all 12 runs", "none of the 12 runs", "3 of 12 runs"."""
    return (
        f"all {n} {what}" if k == n else ("none of the" if k == 0 else f"{k} of") + f" {n} {what}"
    )


def cell_names(keys) -> str:
    """Cell labels of ``(net, loss)`` keys, comma-separated ("" for none)."""
    return ", ".join(cell_label(*k) for k in keys)
