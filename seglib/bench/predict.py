"""The ``predict`` section of ``seglib bench``: images/s of ``predict`` with test-time
augmentation, as it ran before its fast path (batch 1, fp32, contiguous, one file after the
other) and on the fast path (:func:`seglib.infer.predict.predict_files`), on the same images in
one run, with the CPU use and how far the masks agree."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from seglib.data.imageio import read_image, write_png
from seglib.data.synth import make_synthetic_pairs
from seglib.environ import cores
from seglib.infer import postprocess as pipe
from seglib.infer import predict as predict_module
from seglib.runtime import Runtime, cpu_amx, cpu_native_bf16, infer_choices, runtime, use_cores

TODAY = Runtime(torch.device("cpu"), "fp32", channels_last=False, infer_batch=1)
"""How ``predict`` ran the net before its fast path: fp32, contiguous, one view per forward."""


def predict_today(weights: Path, paths: list[Path], out: Path) -> None:
    """``predict`` as it was: read, predict and write each file in turn, in :data:`TODAY`."""
    model, cfg, norm = predict_module.load_model(weights)  # as it was: batch norms unfolded
    for path in paths:
        image, full = read_image(path)
        mask = predict_module.predict_mask(model, cfg, norm, image, out_size=full, rt=TODAY)
        write_png(out / f"{path.stem}_mask.png", mask.astype(np.uint8) * 255)


def predict_fast(weights: Path, paths: list[Path], out: Path, rt: Runtime | None = None) -> None:
    """``predict_files``, the code behind ``python -m seglib predict`` (in its own runtime
    choice, or in ``rt`` for the variants)."""
    predict_module.predict_files(weights, paths, out, rt=rt)


def predict_ways(a, weights: Path) -> dict:
    """Name -> (callable(paths, out folder), the runtime it predicts in), today first."""
    auto = runtime("cpu")

    def fast(rt):
        return lambda ps, out: predict_fast(weights, ps, out, rt)

    ways = {
        "today": (lambda ps, out: predict_today(weights, ps, out), TODAY),
        "fast": (fast(None), auto),
    }
    if a.variants:
        contiguous = Runtime(auto.device, auto.precision, channels_last=False)
        ways["fast contiguous"] = (fast(contiguous), contiguous)
        pairs = Runtime(auto.device, auto.precision, infer_batch=2)
        ways["fast batch 2"] = (fast(pairs), pairs)
        for c in infer_choices(cpu_native_bf16(), cpu_amx(), cores())[1:]:  # AMX: batch 16
            cand = Runtime(auto.device, auto.precision, c.channels_last, c.batch)
            ways[f"fast batch {c.batch}"] = (fast(cand), cand)
        if auto.precision != "fp32":
            fp32 = Runtime(auto.device, "fp32")
            ways["fast fp32"] = (fast(fp32), fp32)
    if torch.cuda.is_available() and a.device != "cpu":
        gpu = runtime("cuda" if a.device == "auto" else a.device)
        ways["fast cuda"] = (fast(gpu), gpu)
    return ways


def _read_masks(folder: Path, paths: list[Path]) -> list[np.ndarray]:
    out = []
    for path in paths:
        with Image.open(folder / f"{path.stem}_mask.png") as im:
            out.append(np.asarray(im) > 127)
    return out


def section_predict(a) -> None:
    """``predict`` with TTA, today's way vs the fast path, alternating; medians of ``--repeats``."""
    weights = Path(a.weights)
    threads = torch.get_num_threads()
    use_cores(a.threads)
    _, cfg, _ = predict_module.load_model(weights)
    name = pipe.name_of(None, cfg)
    sides = pipe.input_sides(cfg["size"], pipe.resolve(name, cfg))
    h, w = a.image_size
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_pairs(Path(tmp) / "data", n=a.images, seed=0, shape=(h, w))
        paths = sorted(root.glob("*.jpg"))
        ways = predict_ways(a, weights)
        print(
            f"# predict: {weights.name} ({cfg['net']} width {cfg['width']}, {name} pipeline, "
            f"input sides {','.join(map(str, sides))}), {len(paths)} synthetic ISIC-style JPEGs "
            f"{w}x{h}, TTA on, repeats {a.repeats}, threads {torch.get_num_threads()}",
            flush=True,
        )
        for run, _ in ways.values():  # untimed: one image, so one-time kernel setup is not timed
            run(paths[:1], Path(tempfile.mkdtemp(dir=tmp)))
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in ways}
        masks = {}
        names = list(ways)
        for r in range(a.repeats):
            for way in names if r % 2 == 0 else names[::-1]:  # ABBA: balances drift
                out = Path(tmp) / f"{way}_{r}"
                out.mkdir()
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                t0, c0 = time.perf_counter(), time.process_time()
                ways[way][0](paths, out)
                wall = time.perf_counter() - t0
                times[way].append((wall, (time.process_time() - c0) / wall))
                masks[way] = _read_masks(out, paths)
    print(f"{'predict way':<24} {'img/s':>7} {'CPU%':>6}  {'precision':<9} {'format':<14} views")
    med = {}
    for way, (_, rt) in ways.items():
        med[way] = statistics.median(t for t, _ in times[way])
        cpu = statistics.median(c for _, c in times[way])
        fmt = "channels-last" if rt.channels_last else "contiguous"
        print(
            f"predict {way:<16} {len(paths) / med[way]:>7.2f} {100 * cpu:>5.0f}%  "
            f"{rt.precision:<9} {fmt:<14} {rt.infer_batch}"
        )
    for way in [w for w in ("fast", "fast cuda") if w in ways]:
        ious = [_iou(m, t) for m, t in zip(masks[way], masks["today"])]
        same = sum(bool((m == t).all()) for m, t in zip(masks[way], masks["today"]))
        cpu = {k: statistics.median(c for _, c in times[k]) for k in (way, "today")}
        print(
            f"ratio predict{way[4:]}: {way} / today = {med['today'] / med[way]:.2f}x img/s "
            f"(CPU {100 * cpu[way]:.0f}% vs {100 * cpu['today']:.0f}%; masks identical on "
            f"{same}/{len(paths)} images, min IoU {min(ious):.4f}; median of {a.repeats})",
            flush=True,
        )
    torch.set_num_threads(threads)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0
