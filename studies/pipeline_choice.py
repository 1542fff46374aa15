"""Choose the inference pipeline on val: mean IoU of variants of ``robust`` (seglib.infer.postprocess),
clean and under artefacts of the robustness suite, each image scored at full resolution.

    python -m studies.pipeline_choice weights/best.pt --data PH2Dataset.tar.xz --split val \\
        --variants plain,robust,no_exposure,no_largest,no_zoom,scale_1,scale_1.5 \\
        --kinds clean,small_lesion,disc,exposure,fov_border --json results/robustness/choice.json

A kind ``a+b`` applies artefact a, then b, to the same image (e.g. ``small_lesion+disc``).

Each artefact image is made once (the suite's deterministic generator) and every variant
predicts it, so the variants are compared on identical inputs. Run it on val only: test is for
the final report (``python -m seglib robustness ... --split test``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seglib import store
from seglib.data.fetch import progress_disabled
from seglib.data.imageio import read_rgb, read_truth
from seglib.infer import postprocess as P
from seglib.infer.predict import load_model, predict_mask
from seglib.robustness import artefacts
from seglib.robustness.suite import checkpoint_cases, rng_for, scores

ROBUST = P.PIPELINES["robust"]
VARIANTS = {
    "plain": P.PIPELINES["plain"],
    "robust": ROBUST,
    "no_exposure": dataclasses.replace(ROBUST, exposure=False),
    "exposure_exact": dataclasses.replace(ROBUST, exposure_band=1.0),
    "exposure_band_1.15": dataclasses.replace(ROBUST, exposure_band=1.15),
    "no_largest": dataclasses.replace(ROBUST, largest=False),
    "no_zoom": dataclasses.replace(ROBUST, zoom=0.0),
    "scale_1": dataclasses.replace(ROBUST, scales=(1.0,)),
    "scale_1.5": dataclasses.replace(ROBUST, scales=(1.5,)),
    "scales_1_1.25": dataclasses.replace(ROBUST, scales=(1.0, 1.25)),
    "zoom_1.6": dataclasses.replace(ROBUST, zoom=1.6),
    "zoom_2.5": dataclasses.replace(ROBUST, zoom=2.5),
    "component_area": dataclasses.replace(ROBUST, component="area"),
    "component_mass": dataclasses.replace(ROBUST, component="mass"),
    "component_centre": dataclasses.replace(ROBUST, component="centre"),
    "component_margin": dataclasses.replace(ROBUST, component="margin"),
}


def apply_kinds(kind: str, image, mask, rng):
    """Artefact ``kind``, or ``a+b+...``: a applied first, then b, ..., all from one ``rng``
    (compounds such as ``small_lesion+disc`` imitate photos with several at once)."""
    for part in kind.split("+"):
        image, mask = artefacts.apply(part, image, mask, rng)
    return image, mask


def compare(
    weights: Path, data: Path, split: str, variants: list[str], kinds: list[str], seeds=(0,)
) -> dict:
    """{variant: {kind: [IoU per image and artefact seed]}} on the ``split`` cases of ``data``
    (each artefact drawn once per seed of ``seeds``; clean once), with a progress bar per image
    (off under CI or when output is not a terminal, as in ``seglib robustness``)."""
    model, cfg, norm = load_model(weights)
    out = {v: {k: [] for k in kinds} for v in variants}
    cases = checkpoint_cases(weights, cfg, data, split)
    for name, image_path, mask_path in tqdm(
        cases, desc=f"{split} images", disable=progress_disabled(None)
    ):
        image = read_rgb(image_path)
        mask = read_truth(mask_path, image.shape[:2])
        for kind in kinds:
            for seed in (0,) if kind == "clean" else seeds:
                img, msk = (
                    (image, mask)
                    if kind == "clean"
                    else apply_kinds(kind, image, mask, rng_for(seed, kind, name))
                )
                for v in variants:
                    pred = predict_mask(model, cfg, norm, img, pipeline=VARIANTS[v])
                    out[v][kind].append(scores(pred, msk)["iou"])
    return out


def table(result: dict, kinds: list[str]) -> str:
    """Markdown: one row per variant, mean IoU per kind, the largest drop vs its own clean."""
    head = "| variant | " + " | ".join(kinds) + " | largest drop |"
    lines = [head, "|" + "---|" * (len(kinds) + 2)]
    for v, per in result.items():
        means = [float(np.mean(per[k])) for k in kinds]
        drop = max((means[0] - m for m in means[1:]), default=0.0)
        cells = " | ".join(f"{m:.3f}" for m in means)
        lines.append(f"| {v} | {cells} | {drop:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--variants", default="plain,robust", help=",".join(VARIANTS))
    ap.add_argument("--kinds", default="clean," + ",".join(artefacts.KINDS))
    ap.add_argument("--seeds", default="0", help="artefact seeds, comma list (default 0)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    variants, kinds = a.variants.split(","), a.kinds.split(",")
    if kinds[0] != "clean":
        raise SystemExit("error: --kinds must start with clean (drops are measured against it)")
    t0 = time.perf_counter()
    seeds = [int(s) for s in a.seeds.split(",")]
    result = compare(Path(a.weights), Path(a.data), a.split, variants, kinds, seeds)
    print(f"{a.weights}, PH2 {a.split}, artefact seeds {seeds}, TTA on, "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(table(result, kinds))
    if a.json:
        store.write_json(
            Path(a.json), {"weights": a.weights, "split": a.split, "seeds": seeds, "iou": result}
        )


if __name__ == "__main__":
    main()
