"""Several datasets in one run: each loaded and split by its own rule, then concatenated.

``--data A,B`` trains on the union of the training portions of A and B; val and test are
reported per dataset and pooled. The split rule of each part: a PH2-layout dataset (real or
synthetic) keeps the course split (100/50/50 for 200 cases, :func:`split_indices` without
fractions), any other folder the run's ``--split`` fractions, default :data:`FOLDER_FRACTIONS`.
Each part is split with the run's split seed, so a dataset's portions do not depend on which
other datasets share the run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from seglib.data.split import split_indices

FOLDER_FRACTIONS = (0.8, 0.1, 0.1)
"""(train, val, test) of a non-PH2 dataset in a several-dataset run, unless ``--split`` says."""


def names_of(data: str) -> list[str]:
    """The datasets of a ``--data`` value: comma-separated, blanks dropped."""
    return [d.strip() for d in str(data).split(",") if d.strip()]


def concat(parts: list, ph2_like: list[bool]):
    """One dataset of ``parts`` (loaded ``PH2Data`` of one size), in order; its ``parts`` list
    records each one's ``name``, ``start``, ``n`` and ``ph2`` (split as PH2)."""
    names = [n for p in parts for n in p.names]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise ValueError(f"--data: case names occur in two datasets ({', '.join(dup)})")
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    out = dataclasses.replace(
        parts[0],
        images=torch.cat([p.images for p in parts]),
        masks=torch.cat([p.masks for p in parts]),
        names=names,
        source=" + ".join(p.source for p in parts),
    )
    out.parts = [
        {"name": p.source, "start": int(s), "n": len(p), "ph2": bool(f)}
        for p, s, f in zip(parts, starts, ph2_like)
    ]
    return out


def split_of(data, seed: int = 0, fractions=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices of ``data``: one dataset as :func:`split_indices` splits it;
    several (``data.parts``) each by its own rule (module docstring), offset and concatenated."""
    parts = getattr(data, "parts", None)
    if not parts:
        return split_indices(len(data), seed=seed, fractions=fractions)
    out: list[list[np.ndarray]] = [[], [], []]
    for p in parts:
        rule = None if p["ph2"] else (fractions or FOLDER_FRACTIONS)
        for k, idx in enumerate(split_indices(p["n"], seed=seed, fractions=rule)):
            out[k].append(idx + p["start"])
    return tuple(np.concatenate(o) for o in out)


def part_of(data, idx) -> list[str]:
    """The dataset name of each index in ``idx`` (one name for a single dataset)."""
    parts = getattr(data, "parts", None)
    if not parts:
        return [data.source] * len(idx)
    starts = np.array([p["start"] for p in parts])
    return [parts[k]["name"] for k in np.searchsorted(starts, np.asarray(idx), "right") - 1]


def weighted(data, train: np.ndarray, weights) -> np.ndarray:
    """The training indices with each dataset's repeated ``weights[k]`` times per epoch (integer
    weights, one per dataset; None: each image once)."""
    parts = getattr(data, "parts", None)
    if weights is None:
        return train
    if not parts or len(weights) != len(parts):
        n = len(parts) if parts else 1
        raise ValueError(f"--data-weights: {len(weights)} weights for {n} dataset(s)")
    if any(int(w) != w or w < 0 for w in weights) or not any(weights):
        raise ValueError(f"--data-weights {weights}: whole numbers >= 0, not all 0")
    groups = np.array(part_of(data, train))
    return np.concatenate(
        [np.tile(train[groups == p["name"]], int(w)) for p, w in zip(parts, weights)]
    )


def describe(data, split, with_names: bool = False) -> list[dict]:
    """Each dataset of the run with its split sizes (and, ``with_names``, its val and test case
    names, so a scorer can find the same portions in another copy of the data)."""
    parts = getattr(data, "parts", None) or [
        {"name": data.source, "start": 0, "n": len(data), "ph2": data.source == "PH2"}
    ]
    out = []
    for p in parts:
        row = {"name": p["name"], "n": p["n"]}
        for key, idx in zip(("train", "val", "test"), split):
            mine = [int(i) for i in idx if p["start"] <= i < p["start"] + p["n"]]
            row[key] = len(mine)
            if with_names and key != "train":
                row[f"{key}_names"] = [data.names[i] for i in mine]
        out.append(row)
    return out


def by_dataset(data, idx, values: dict) -> dict:
    """Means of the per-image ``values`` (name -> (N,) tensor over ``idx``) per dataset."""
    groups = np.array(part_of(data, idx))
    out = {}
    for name in dict.fromkeys(groups):
        sel = torch.from_numpy(groups == name)
        out[name] = {"n": int(sel.sum())} | {k: v[sel].mean().item() for k, v in values.items()}
    return out
