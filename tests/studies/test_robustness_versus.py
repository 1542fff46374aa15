"""studies/robustness_versus.py: two robustness tables compared image by image."""

from __future__ import annotations

import pytest

from studies import robustness_versus as mod


def _table(names, **kinds):
    return {"names": names, "rows": [{"kind": k, "iou_per_image": v} for k, v in kinds.items()]}


def test_paired_difference_and_drop_by_hand():
    a = _table(["x", "y", "z", "w"], clean=[0.9, 0.8, 1.0, 0.7], blur=[0.8, 0.8, 0.9, 0.7])
    b = _table(["x", "y", "z", "w"], clean=[0.8, 0.8, 0.8, 0.8], hair=[0.1] * 4)
    rows = mod.compare(a, b)
    assert [r["kind"] for r in rows] == ["clean"]  # only kinds both tables hold
    (r,) = rows
    assert r["a"].mean == pytest.approx(0.85) and r["b"] == pytest.approx(0.8)
    assert r["diff"].diff == pytest.approx(0.05)  # (0.1 + 0 + 0.2 - 0.1) / 4
    assert r["diff"].low <= 0.05 <= r["diff"].high
    b["rows"].append({"kind": "blur", "iou_per_image": [0.8] * 4})
    blur = mod.compare(a, b)[1]
    assert blur["drop"].mean == pytest.approx(0.05)  # A's clean minus A's blur: (0.1+0+0.1+0)/4
    line = mod.table([blur]).splitlines()[2]
    assert line.startswith("| blur | 0.800 [") and "| 0.800 | +0.000 [" in line


def test_tables_of_different_images_are_refused():
    with pytest.raises(ValueError, match="different images"):
        mod.compare(_table(["x"], clean=[1.0]), _table(["y"], clean=[1.0]))
