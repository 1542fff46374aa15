"""Several datasets in one run (seglib.data.multi): each keeps its own split, training draws
from the union (optionally weighted), val and test are reported per dataset and pooled."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import tiny_config

from seglib.data import multi
from seglib.data.ph2 import PH2Data, load_dataset, resolve_data
from seglib.data.split import split_indices
from seglib.data.synth import make_synthetic_pairs
from seglib.engine.options import FitOptions
from seglib.engine.train import fit

SYN = "synthetic PH2-like data"  # the name of a synth PH2 tree (its marker), never "PH2"


def fake(n: int, source: str, prefix: str, value: int = 0) -> PH2Data:
    images = torch.full((n, 3, 8, 8), value, dtype=torch.uint8)
    return PH2Data(images, torch.zeros(n, 1, 8, 8, dtype=torch.uint8),
                   [f"{prefix}{i:03d}" for i in range(n)], source)  # fmt: skip


def test_each_dataset_keeps_its_own_split():
    ph2, isic = fake(200, "PH2", "IMD"), fake(40, "ISIC", "ISIC_")
    both = multi.concat([ph2, isic], [True, False])
    tr, va, te = multi.split_of(both, seed=0)
    # PH2 keeps the course split: the same 50 test cases as PH2 alone
    alone = split_indices(200, seed=0)
    assert [both.names[i] for i in te if i < 200] == [ph2.names[i] for i in alone[2]]
    assert [len([i for i in s if i < 200]) for s in (tr, va, te)] == [100, 50, 50]
    # the folder: 80/10/10 of 40 = 32/4/4, its indices after PH2's
    assert [len([i for i in s if i >= 200]) for s in (tr, va, te)] == [32, 4, 4]
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(240))
    # --split fractions apply to the folder only
    tr, va, te = multi.split_of(both, seed=0, fractions=(0.5, 0.25, 0.25))
    assert [len([i for i in s if i >= 200]) for s in (tr, va, te)] == [20, 10, 10]
    assert len([i for i in te if i < 200]) == 50


def test_a_single_dataset_splits_as_before():
    one = fake(12, "folder", "c")
    assert all(np.array_equal(a, b) for a, b in zip(multi.split_of(one, 3), split_indices(12, 3)))


def test_describe_names_every_dataset_and_its_sizes():
    both = multi.concat([fake(8, "PH2", "IMD"), fake(10, "ISIC", "ISIC_")], [True, False])
    split = multi.split_of(both, 0)
    rows = multi.describe(both, split, with_names=True)
    assert [(r["name"], r["n"], r["train"], r["val"], r["test"]) for r in rows] == [
        ("PH2", 8, 4, 2, 2),  # n // 4 each for val and test
        ("ISIC", 10, 8, 1, 1),
    ]
    assert rows[1]["test_names"][0].startswith("ISIC_") and len(rows[0]["val_names"]) == 2


def test_weights_repeat_a_dataset_per_epoch():
    both = multi.concat([fake(4, "A", "a"), fake(6, "B", "b")], [False, False])
    train = np.arange(10)
    got = multi.weighted(both, train, [3, 1])
    assert sorted(got.tolist()) == sorted([0, 1, 2, 3] * 3 + [4, 5, 6, 7, 8, 9])
    assert multi.weighted(both, train, None) is train
    with pytest.raises(ValueError, match="2 dataset"):
        multi.weighted(both, train, [1, 2, 3])
    with pytest.raises(ValueError, match="whole numbers"):
        multi.weighted(both, train, [0.5, 1])


def test_means_per_dataset():
    both = multi.concat([fake(2, "A", "a"), fake(3, "B", "b")], [False, False])
    by = multi.by_dataset(both, np.array([0, 1, 2, 4]), {"iou": torch.tensor([1.0, 0.5, 0.2, 0.4])})
    assert by["A"] == {"n": 2, "iou": pytest.approx(0.75)}
    assert by["B"] == {"n": 2, "iou": pytest.approx(0.3)}


def test_the_same_case_name_in_two_datasets_is_refused():
    with pytest.raises(ValueError, match="a000"):
        multi.concat([fake(2, "A", "a"), fake(2, "B", "a")], [False, False])


def test_data_names_several_with_commas(tmp_path, cache, synth_tree):
    isic = make_synthetic_pairs(tmp_path / "isic", n=8, seed=2, shape=(24, 32))
    data = resolve_data(f"{synth_tree}, {isic}", 16, quiet=True)
    assert data.source == f"{SYN} + {isic.name}" and len(data) == 6 + 8
    assert [(p["name"], p["n"], p["ph2"]) for p in data.parts] == [
        (SYN, 6, True),
        (isic.name, 8, False),
    ]
    alone = load_dataset(isic, 16)
    assert torch.equal(data.images[6:], alone.images) and data.names[6:] == alone.names


def test_a_run_on_two_datasets_reports_each(tmp_path, cache, synth_tree):
    isic = make_synthetic_pairs(tmp_path / "isic", n=10, seed=2, shape=(24, 32))
    data = resolve_data(f"{synth_tree},{isic}", 32, quiet=True)
    split = multi.split_of(data, 0)
    cfg = tiny_config(f"{synth_tree},{isic}", epochs=1, data_weights=[2, 1])
    out = tmp_path / "run"
    result = fit(cfg, data, split, out, FitOptions(device="cpu", quiet=True, tta=False))
    assert result["dataset"] == f"{SYN} + {isic.name}"
    by = result["by_dataset"]
    assert {k: v["n"] for k, v in by.items()} == {SYN: 1, isic.name: 1}
    # pooled = mean over the test images, here one per dataset
    assert result["iou"] == pytest.approx((by[SYN]["iou"] + by[isic.name]["iou"]) / 2, abs=1e-6)
    saved = json.loads((out / "config.json").read_text())
    assert [(d["name"], d["train"], d["val"], d["test"]) for d in saved["datasets"]] == [
        (SYN, 4, 1, 1),
        (isic.name, 8, 1, 1),
    ]
    row = json.loads((out / "history.json").read_text())[0]
    assert set(row["val_iou_by_dataset"]) == {SYN, isic.name}
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["datasets"][1]["test_names"] == [data.names[i] for i in split[2] if i >= 6]
