"""Results store: one folder per run, every file written atomically (temp file + rename).

Layout of a results folder ``OUT``::

    OUT/<net>_<loss>_s<seed>/
        config.json    the run's full config (RunConfig as a dict)
        history.json   list of per-epoch dicts: epoch, train_loss, train_iou, val_loss,
                       val_iou, val_dice, val_score, lr, seconds
        test.json      test metrics of the best checkpoint: iou, dice, score (means),
                       iou_per_image, dice_per_image, score_per_image, names, best_epoch,
                       params, train_seconds
        best.pt        best checkpoint by val IoU (model state_dict + config)
        last.pt        resume state (model, optimizer, scheduler, RNG, epoch)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def run_name(net: str, loss: str, seed: int) -> str:
    """Folder name of one run, e.g. ``unet_bce_s0``."""
    return f"{net}_{loss}_s{seed}"


def atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    data = json.dumps(obj, indent=1, sort_keys=True).encode()
    atomic_write(path, lambda f: f.write(data))


def read_json(path: Path, default: Any = None) -> Any:
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text())


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` atomically, so a crash never leaves a half-written checkpoint."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_runs(out: Path) -> list[dict]:
    """Every run folder under ``out`` that has a config, as dicts with keys
    ``name``, ``dir``, ``config``, ``history`` (list) and ``test`` (dict or None), sorted by name."""
    out = Path(out)
    runs = []
    for d in sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []:
        cfg = read_json(d / "config.json")
        if cfg is None:
            continue
        runs.append(
            {
                "name": d.name,
                "dir": d,
                "config": cfg,
                "history": read_json(d / "history.json", []),
                "test": read_json(d / "test.json"),
            }
        )
    return runs


def dataset_of(runs: list[dict]) -> str:
    """The name of the dataset the finished ``runs`` were tested on (``test.json``'s
    ``dataset``; runs tested before seglib recorded it were on PH2), several joined by " + "."""
    names = {r["test"].get("dataset", "PH2") for r in runs if r.get("test")}
    return " + ".join(sorted(names)) or "PH2"
