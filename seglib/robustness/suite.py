"""Robustness suite: score a checkpoint on a PH2 split at full resolution, clean and under each
artefact of :mod:`seglib.robustness.artefacts`, and report the drop against clean.

Images and masks are read from the original files (the archive is extracted once into the
cache), never from the resized tensor cache, and every prediction is scored at the resolution of
the image it was made for, as ``predict`` writes it. The artefact applied to an image depends
only on ``(seed, kind, image name)``, so results do not depend on the split order or on which
other kinds are run. Choose augmentation and post-processing on ``split="val"``; ``test`` is for
the final report only.
"""

from __future__ import annotations

import zlib
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seglib import metrics, store
from seglib.augment.strong import PATCHES
from seglib.data.imageio import read_rgb, read_truth
from seglib.data.ph2 import split_indices
from seglib.environ import progress_disabled
from seglib.infer.options import InferenceOptions
from seglib.infer.postprocess import name_of
from seglib.infer.predict import load_model, predict_mask, prefetch
from seglib.infer.score import dataset_pairs
from seglib.robustness import artefacts
from seglib.runtime import runtime, use_cores

BASIC_KINDS = ("rot90",)
"""Kinds the basic augmentation (flips and quarter turns of the square input) already covers."""

COLUMNS = ("iou", "dice", "score")
MARKERS = ("<!-- robustness:begin -->", "<!-- robustness:end -->")


def split_cases(data: Path, split: str = "test", split_seed: int = 0, fractions=None) -> list:
    """``(name, image path, mask path)`` of the ``split`` ("train", "val" or "test") cases of a
    PH2 or paired-image folder or archive, split as in training (the checkpoint's seed and
    fractions, :func:`seglib.data.split_indices`)."""
    names = ("train", "val", "test")
    if split not in names:
        raise ValueError(f"--split {split}: choose train, val or test")
    _, pairs = dataset_pairs(data)
    idx = split_indices(len(pairs), split_seed, fractions)[names.index(split)]
    return [(pairs[i].name, pairs[i].image, pairs[i].mask) for i in idx]


def checkpoint_cases(weights: Path, cfg: dict, data: Path, split: str) -> list:
    """:func:`split_cases` split as the checkpoint's run was (its ``cfg``); ValueError naming
    ``weights`` for a split other than test of a refit, which trained on train and val."""
    if cfg.get("refit") and split != "test":
        raise ValueError(f"{weights}: a refit, trained on the {split} images too: score it on test")
    return split_cases(data, split, cfg.get("split_seed", 0), cfg.get("split_fractions"))


def seen_in_training(cfg: dict) -> set[str]:
    """Artefact kinds the checkpoint's training augmentation imitated."""
    if cfg.get("augment") in PATCHES:
        return set(artefacts.TRAINED_KINDS)
    return set(BASIC_KINDS) if cfg.get("augment", True) else set()


def rng_for(seed: int, kind: str, name: str) -> np.random.Generator:
    """The generator of one (kind, image): keyed by stable CRC32 hashes of the names."""
    return np.random.default_rng([seed, zlib.crc32(kind.encode()), zlib.crc32(name.encode())])


def scores(pred: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """IoU, Dice and course score of one (H,W) bool prediction against its mask."""
    p = torch.from_numpy(np.ascontiguousarray(pred))[None, None]
    t = torch.from_numpy(np.ascontiguousarray(mask))[None, None]
    return {k: float(v[0]) for k, v in metrics.summarise(p, t).items()}


def evaluate(
    weights: Path,
    data: Path,
    split: str = "test",
    kinds=None,
    options: InferenceOptions | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> dict:
    """Score ``weights`` on the ``split`` cases of ``data``, clean and under each of ``kinds``
    (default: all of :data:`seglib.robustness.artefacts.KINDS`).

    Returns a JSON-ready dict: the settings, ``names``, and ``rows``: one per kind ("clean"
    first) with mean ``iou``/``dice``/``score``, ``drop_iou``/``drop_score`` (clean minus kind;
    positive is worse), ``trained`` (kind imitated by the checkpoint's training augmentation)
    and the per-image values. ``options``: device, precision, test-time augmentation and
    pipeline (:class:`seglib.infer.options.InferenceOptions`; None: its defaults). Each image
    and its artefact versions are made a few images ahead in a background thread.
    """
    o = options or InferenceOptions()
    kinds = _known_kinds(kinds)
    rt = runtime(o.device, o.precision)
    model, cfg, norm = load_model(weights, rt)
    pipeline = name_of(o.pipeline, cfg)  # an unknown name fails before any work
    cases = checkpoint_cases(weights, cfg, data, split)
    predict = partial(predict_mask, model, cfg, norm, tta=o.tta, pipeline=pipeline, rt=rt)
    versions = partial(_versions, kinds=kinds, seed=seed)
    bar = tqdm(total=len(cases), desc=f"robustness {split}", disable=progress_disabled(progress))
    per = _score_cases(cases, versions, predict, ["clean", *kinds], bar)
    seen = seen_in_training(cfg)
    rows = _rows(per, seen)
    return {
        "weights": str(weights),
        "data": str(data),
        "split": split,
        "n": len(cases),
        "tta": o.tta,
        "pipeline": pipeline,
        "precision": rt.precision,
        "seed": seed,
        "size": cfg["size"],
        "augment": cfg.get("augment", True),
        "trained_kinds": sorted(seen),
        "names": [c[0] for c in cases],
        "rows": rows,
    }


def _known_kinds(kinds) -> list[str]:
    """``kinds`` as a list (None: all of them); ValueError for an unknown one."""
    kinds = list(artefacts.KINDS) if kinds is None else list(kinds)
    for k in kinds:
        if k not in artefacts.KINDS:
            raise ValueError(f"unknown artefact {k!r}; choose from {', '.join(artefacts.KINDS)}")
    return kinds


def _versions(case, kinds: list[str], seed: int) -> list:
    """[(kind, image, mask)] of one case, "clean" first, then each artefact of ``kinds``."""
    name, image_path, mask_path = case
    image = read_rgb(image_path)
    mask = read_truth(mask_path, image.shape[:2])
    return [(kind, *((image, mask) if kind == "clean" else
                     artefacts.apply(kind, image, mask, rng_for(seed, kind, name))))
            for kind in ["clean", *kinds]]  # fmt: skip


def _score_cases(cases: list, versions, predict, kinds: list[str], bar) -> dict:
    """{kind: {column: per-image values}}, each case's versions made one case ahead."""
    per = {k: {c: [] for c in COLUMNS} for k in kinds}
    with bar:
        for _, loaded in prefetch(cases, versions, ahead=1):
            for kind, img, msk in loaded.result():
                for c, v in scores(predict(img), msk).items():
                    per[kind][c].append(v)
            bar.update()
    return per


def _rows(per: dict, seen: set[str]) -> list[dict]:
    """One row per kind: means, drops against clean, whether training imitated it, per image."""
    clean = {c: float(np.mean(per["clean"][c])) for c in COLUMNS}
    rows = []
    for kind, vals in per.items():
        means = {c: float(np.mean(vals[c])) for c in COLUMNS}
        rows.append(
            {
                "kind": kind,
                "trained": None if kind == "clean" else kind in seen,
                **means,
                "drop_iou": clean["iou"] - means["iou"],
                "drop_score": clean["score"] - means["score"],
                **{f"{c}_per_image": vals[c] for c in COLUMNS},
            }
        )
    return rows


def markdown(result: dict) -> str:
    """The rows of the result as a markdown table: one per kind, means and drops vs clean."""
    lines = [
        "| artefact | seen in training | IoU | IoU drop | Dice | score | score drop |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        seen = "-" if r["trained"] is None else ("yes" if r["trained"] else "no")
        lines.append(
            f"| {r['kind']} | {seen} | {r['iou']:.3f} | {r['drop_iou']:+.3f} | "
            f"{r['dice']:.3f} | {r['score']:.3f} | {r['drop_score']:+.3f} |"
        )
    return "\n".join(lines)


def table(result: dict) -> str:
    """:func:`markdown` under a line that says what was measured."""
    return (
        f"Robustness on PH2 {result['split']} ({result['n']} images, full resolution, "
        f"TTA {'on' if result['tta'] else 'off'}, {result.get('pipeline', 'plain')} pipeline, "
        f"seed {result['seed']})\n\n{markdown(result)}"
    )


def update_card(path: Path, result: dict) -> None:
    """Replace the table between ``<!-- robustness:begin -->`` and ``<!-- robustness:end -->``
    in the markdown file ``path`` (a model card) with :func:`markdown` of ``result``."""
    path = Path(path)
    text = path.read_text() if path.is_file() else ""
    begin, end = MARKERS
    if begin not in text or end not in text.split(begin, 1)[1]:
        raise ValueError(f"{path}: no {begin} ... {end} section to update")
    head, rest = text.split(begin, 1)
    path.write_text(f"{head}{begin}\n{markdown(result)}\n{end}{rest.split(end, 1)[1]}")


def run(a, options: InferenceOptions) -> None:
    """CLI entry: ``python -m seglib robustness WEIGHTS --data PH2 [--json OUT] ...``, with the
    inference options the command line asks for."""
    use_cores(a.threads)
    result = evaluate(
        Path(a.weights),
        Path(a.data),
        split=a.split,
        kinds=a.kinds,
        options=options,
        seed=a.seed,
    )
    print(table(result))
    if a.json:
        store.write_json(Path(a.json), result)
        print(f"wrote {a.json}")
    if a.card:
        update_card(Path(a.card), result)
        print(f"updated the table in {a.card}")
