"""studies/shipped_choice.py: candidates scored on val only; each archive counts the same in the
mean; the paired difference is taken image by image against the base."""

from __future__ import annotations

import json

from studies import shipped_choice as mod

VAL = {  # weights -> dataset -> per-image IoU
    "base.pt": {"A": [0.8, 0.9], "B": [0.6, 0.7, 0.8]},
    "cand.pt": {"A": [0.9, 1.0], "B": [0.6, 0.7, 0.8]},
}


def test_val_only_mean_of_archives_and_paired_difference(tmp_path, monkeypatch, capsys):
    asked = []

    def fake_score(weights, data, split, options):
        asked.append((weights.name, str(data), split, options.pipeline, options.tta))
        ious = VAL[weights.name][str(data)]
        return str(data), [{"name": f"{data}{i}", "iou": v} for i, v in enumerate(ious)]

    monkeypatch.setattr(mod, "score", fake_score)
    out = tmp_path / "choice.json"
    mod.main(["base.pt", "cand.pt", "--data", "A,B", "--out", str(out)])
    assert {a[2] for a in asked} == {"val"} and len(asked) == 4  # never the test portion
    assert {(a[3], a[4]) for a in asked} == {("plain", True)}
    rows = capsys.readouterr().out.splitlines()
    base, cand = rows[2], rows[3]
    assert base.startswith("| base.pt | 0.850 [") and "| 0.775 | (base) |" in base  # (.85+.7)/2
    # the candidate gains 0.1 on 2 of the 5 images: mean paired difference +0.04
    assert cand.startswith("| cand.pt | 0.950 [") and "| 0.825 | +0.040 [" in cand
    saved = json.loads(out.read_text())
    assert saved["val_iou"]["cand.pt"]["A"] == {"A0": 0.9, "A1": 1.0}
