"""Small lesions on real skin: the suite's ``small_lesion`` kind pastes the shrunken photo on
smooth skin colour (``seglib.robustness.artefacts.smooth_surround``), and the training augmentation does
the same, so the suite may flatter a net on a real small lesion, which sits in textured skin.
This probe scores a checkpoint on the same zoom-outs (same scale and place per image and
artefact seed) with other surrounds (:data:`SURROUNDS`): the smooth one, one quilted from the
photo's own lesion-free skin, shrunk by the same factor (:func:`skin_surround`), and the same
with each tile's own brightness kept, a patchwork like blotchy, unevenly lit skin
(:func:`patchwork_surround`). Never used in training.

    python -m studies.skin_surround_probe weights/best.pt --data PH2Dataset.tar.xz \\
        --split val --seeds 0,1 --json results/robustness/skin_surround_val.json

Prints the mean IoU per surround (each image at full resolution, the checkpoint's pipeline or
``--pipeline``), and how many images had too little skin for a tile (they get the smooth one).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from seglib import store
from seglib.data.fetch import progress_disabled
from seglib.data.imageio import read_rgb, read_truth
from seglib.infer.postprocess import LUMA
from seglib.infer.predict import load_model, predict_mask
from seglib.robustness import artefacts
from seglib.robustness.suite import checkpoint_cases, rng_for, scores


def skin_mask(image: np.ndarray, mask: np.ndarray, margin: float = 0.03, black: float = 60.0):
    """Lesion-free skin in the field of view: farther than ``margin`` of the short side from the
    lesion (its halo is not skin) and brighter than luma ``black`` (not a dark field border)."""
    far = ndimage.distance_transform_edt(~mask) > margin * min(mask.shape)
    return far & (image.astype(np.float32) @ LUMA > black)


def skin_surround(image, mask, shape, scale, rng, tile=96, shading=False):
    """:func:`quilt`, shifted per channel to the mean colour of the skin near the lesion (that of
    the smooth surround, ``seglib.robustness.artefacts.skin_colour``), so the two surrounds differ in
    texture, not in colour (PH2's periphery, where most tiles come from, is darker)."""
    out = quilt(image, mask, shape, scale, rng, tile, shading=shading)
    return out - out.mean((0, 1)) + artefacts.skin_colour(image, mask)


def patchwork_surround(image, mask, shape, scale, rng):
    """:func:`skin_surround` with each tile's own shading kept: a patchwork of brightness
    (PH2's vignetted periphery next to its bright middle), like blotchy, unevenly lit skin."""
    return skin_surround(image, mask, shape, scale, rng, shading=True)


SURROUNDS = {
    "smooth": artefacts.smooth_surround,
    "skin": skin_surround,
    "patchwork": patchwork_surround,
}


def quilt(image, mask, shape, scale, rng, tile: int = 96, fallback=None, shading=False):
    """(H,W,3) float skin quilted from ``image``'s lesion-free skin at ``scale``: square tiles
    of side ``tile`` (full resolution) lying wholly in :func:`skin_mask`, drawn from ``rng``,
    each shrunk by ``scale``, shifted to the skin's mean colour (a tile keeps its texture, not the
    shading of the place it came from, so no patchwork shows) and laid on a grid at half-tile
    steps with smoothstep weights (``shading``: tiles keep their own mean colour),
    normalised (image quilting, Efros & Freeman 2001, "Image quilting for texture synthesis and
    transfer", SIGGRAPH, without its minimum-error seams). ``fallback`` (default: the smooth
    surround) when no tile fits."""
    h, w = shape
    skin = skin_mask(image, mask)
    ys, xs = np.nonzero(tile_centres(skin, tile))
    if ys.size == 0:
        return (fallback or artefacts.smooth_surround)(image, mask, shape, scale, rng)
    mean = image[skin].mean(0).astype(np.float32)
    side = max(4, round(tile * scale))
    step = max(1, side // 2)
    weight = np.outer(artefacts.feather(side, 0.5), artefacts.feather(side, 0.5))[..., None]
    acc = np.zeros((h + 2 * side, w + 2 * side, 3), np.float32)
    tot = np.zeros((h + 2 * side, w + 2 * side, 1), np.float32)
    for top in range(0, h + side, step):
        for left in range(0, w + side, step):
            k = int(rng.integers(ys.size))
            y0, x0 = ys[k] - tile // 2, xs[k] - tile // 2
            patch = Image.fromarray(image[y0 : y0 + tile, x0 : x0 + tile]).resize(
                (side, side), Image.BILINEAR
            )
            patch = np.asarray(patch, np.float32)
            if not shading:
                patch += mean - patch.mean((0, 1))  # texture, not the vignetting's shading
            acc[top : top + side, left : left + side] += weight * patch
            tot[top : top + side, left : left + side] += weight
    return (acc / np.maximum(tot, 1e-6))[side // 2 : side // 2 + h, side // 2 : side // 2 + w]


def tile_centres(skin: np.ndarray, tile: int) -> np.ndarray:
    """(H,W) bool: the centres of the ``tile``-sided squares lying wholly in ``skin``."""
    return ndimage.minimum_filter(skin, size=tile, mode="constant", cval=False)


def has_tile(image, mask, tile: int = 96) -> bool:
    """Whether a whole skin tile fits in ``image`` (else the probe falls back to smooth skin)."""
    return bool(tile_centres(skin_mask(image, mask), tile).any())


def probe(
    weights: Path, data: Path, split: str, seeds, pipeline=None, surrounds=("smooth", "skin")
):
    """{surround: [IoU], ..., "no_tile": [names]}: per image and artefact seed, for each of
    ``surrounds`` (keys of :data:`SURROUNDS`), predicted through ``pipeline`` (default: the
    checkpoint's)."""
    model, cfg, norm = load_model(weights)
    out = {key: [] for key in surrounds} | {"no_tile": []}
    cases = checkpoint_cases(weights, cfg, data, split)
    for name, image_path, mask_path in tqdm(cases, desc=split, disable=progress_disabled(None)):
        image = read_rgb(image_path)
        mask = read_truth(mask_path, image.shape[:2])
        if not has_tile(image, mask):
            out["no_tile"].append(name)
        for seed in seeds:
            for key in surrounds:
                rng = rng_for(seed, "small_lesion", name)
                img, msk = artefacts.small_lesion(image, mask, rng, surround=SURROUNDS[key])
                out[key].append(
                    scores(predict_mask(model, cfg, norm, img, pipeline=pipeline), msk)["iou"]
                )
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--seeds", default="0", help="artefact seeds, comma list (default 0)")
    ap.add_argument("--surrounds", default="smooth,skin", help=",".join(SURROUNDS))
    ap.add_argument("--pipeline", help="plain or robust (default: the checkpoint's)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    seeds = [int(s) for s in a.seeds.split(",")]
    t0 = time.perf_counter()
    surrounds = a.surrounds.split(",")
    res = probe(Path(a.weights), Path(a.data), a.split, seeds, a.pipeline, surrounds)
    print(f"{a.weights}, PH2 {a.split}, small_lesion seeds {seeds}, "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    for key in surrounds:
        v = np.asarray(res[key])
        print(
            f"{key:6s} surround: mean IoU {v.mean():.3f}, below 0.5: {(v < 0.5).sum()} of {v.size}"
        )
    print(f"images without a skin tile (smooth surround used): {len(res['no_tile'])}")
    if a.json:
        store.write_json(
            Path(a.json),
            {"weights": a.weights, "split": a.split, "seeds": seeds, "pipeline": a.pipeline} | res,
        )


if __name__ == "__main__":
    main()
