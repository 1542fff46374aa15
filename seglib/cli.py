"""Command line of seglib: python -m seglib {run,evaluate,report,predict,score,export,synth,robustness,bench} --help"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from seglib.environ import quiet_openmp

# "basic" + seglib.augment.strong.PATCHES, spelt out so that the CLI starts without torch
AUGMENTS = ("basic", "strong", "mixed", "mixed_patchy", "mixed_patchy_mild")

quiet_openmp()  # before anything imports torch: idle OpenMP threads sleep (seglib/environ.py)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # seglib.runtime.PRECISIONS, without importing torch
PIPELINE_CHOICES = ("auto", "plain", "robust")  # seglib.infer.postprocess.PIPELINES and "auto"
PIPELINE_HELP = "inference pipeline (default auto: the checkpoint's; docs/robustness.md)"
PRECISION_HELP = "auto (default): the runtime's choice, as for run (bf16 where the CPU has it)"

DESCRIPTION = (
    "Skin-lesion segmentation on PH2 or your own images: train the grid of nets x losses (run), "
    "re-test it (evaluate), write tables, summary and figures (report), segment images "
    "(predict), score a model against expert masks (score), ship weights (export), write "
    "synthetic data (synth), test a model under image artefacts (robustness), or measure speed "
    "(bench). Use python -m seglib COMMAND --help for a command's options."
)


def _csv(text: str) -> list[str]:
    return [t.strip().lower() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _jobs(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _fractions(text: str) -> list[float]:
    try:
        fr = [float(t) for t in _csv(text)]
    except ValueError:
        fr = []
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(
            f"expected train,val,test fractions summing to 1 (e.g. 0.6,0.2,0.2), got {text!r}"
        )
    return fr


def run_configs(a) -> list:
    """The run configs ``run``'s arguments ``a`` ask for (``--init`` made absolute)."""
    from seglib.engine import grid

    return grid.configs(
        a.preset,
        nets=a.nets or grid.NETS,
        losses_=a.losses or grid.LOSSES,
        seeds=a.seeds,
        data=a.data,
        epochs=a.epochs,
        size=a.size,
        width=a.width,
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        encoder_lr_scale=a.encoder_lr_scale,
        split_fractions=a.split,
        init=a.init and str(Path(a.init).resolve()),
        swa=a.swa,
        refit=a.refit or None,
        augment={"basic": True, **{k: k for k in AUGMENTS[1:]}}.get(
            a.augment
        ),  # basic: configs unchanged
    )


def cmd_run(a) -> None:
    from seglib.engine import grid

    cfgs = run_configs(a)
    failed = None
    try:
        grid.run_grid(
            cfgs,
            a.out,
            device=a.device,
            quiet=a.quiet or None,
            tta=not a.no_tta,
            precision=a.precision,
            jobs=a.jobs,
            threads=a.threads,
            executor=a.executor,
            ray_address=a.ray_address,
        )
    except grid.GridFailed as e:  # report the runs that finished, then exit 2
        failed = e
    if not a.no_report:
        cmd_report(argparse.Namespace(results=a.out, diag=a.diag, md=None, device=a.device))
    if failed:
        raise failed


def cmd_evaluate(a) -> None:
    from seglib.engine import grid

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    grid.retest(
        Path(a.results), data=a.data, device=a.device, tta=not a.no_tta, precision=a.precision
    )


def cmd_report(a) -> None:
    from seglib import store
    from seglib.figures import curves
    from seglib.report import markdown

    results = Path(a.results)
    if not results.is_dir():
        raise FileNotFoundError(f"{results}: no such results folder")
    md = Path(a.md) if a.md else results / "REPORT.md"
    diag = Path(a.diag) if a.diag else results / "diag"
    written = curves.write_all(results, diag)
    from seglib.figures.examples import write_predictions

    written += write_predictions(results, diag, device=a.device)
    text = markdown.write_report(results, md)
    if getattr(a, "readme", None):
        link = Path(os.path.relpath(md.resolve(), Path(a.readme).resolve().parent)).as_posix()
        head = markdown.headline(store.load_runs(results), readme=True)
        head += f"\nThe full report (paired tests, summary, per-run details): [{link}]({link}).\n"
        markdown.update_readme(a.readme, head, section=a.section)
    print(text)
    print(f"wrote {md} and {len(written)} figures in {diag}")


def cmd_predict(a) -> None:
    from seglib.infer.predict import DEFAULT_WEIGHTS, predict_files
    from seglib.runtime import use_cores

    use_cores(a.threads)
    weights = a.weights or DEFAULT_WEIGHTS
    predict_files(weights, a.images, a.out, device=a.device, tta=not a.no_tta,
                  overlay=a.overlay, on_written=print, pipeline=a.pipeline,
                  precision=a.precision)  # fmt: skip


def cmd_score(a) -> None:
    from seglib.infer.predict import DEFAULT_WEIGHTS
    from seglib.infer.score import score, summary_lines, write_csv
    from seglib.runtime import use_cores

    use_cores(a.threads)
    source, rows = score(a.weights or DEFAULT_WEIGHTS, Path(a.data), split=a.split,
                         device=a.device, tta=not a.no_tta, overlays=a.overlays, worst=a.worst,
                         pipeline=a.pipeline, precision=a.precision,
                         masks=a.masks and Path(a.masks))  # fmt: skip
    if a.out:
        write_csv(rows, Path(a.out))
    print("\n".join(summary_lines(source, rows, a.split, not a.no_tta)))
    if a.out:
        print(f"wrote {a.out}")


def cmd_export(a) -> None:
    from seglib.infer.predict import DEFAULT_WEIGHTS, export_weights

    dest = Path(a.dest) if a.dest else DEFAULT_WEIGHTS
    print(f"exported {export_weights(Path(a.results), dest, a.pipeline)} -> {dest}")


def cmd_synth(a) -> None:
    from seglib.data.synth import make_synthetic_pairs, make_synthetic_ph2

    if a.layout == "ph2":
        print(make_synthetic_ph2(a.root, n=a.n, seed=a.seed))
    else:
        print(make_synthetic_pairs(a.root, n=a.n, seed=a.seed, layout=a.layout))


def cmd_robustness(a) -> None:
    from seglib.robustness.suite import run

    run(a)


def inference_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs a model on images (predict, score, robustness)."""
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--no-tta", action="store_true", help="no test-time augmentation (faster)")
    p.add_argument("--pipeline", default="auto", choices=PIPELINE_CHOICES, help=PIPELINE_HELP)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m seglib", description=DESCRIPTION)
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="train the grid (resumes), then write the report")
    r.add_argument("--preset", default="smoke", help="smoke | cpu | course (default smoke)")
    r.add_argument("--data", help="PH2 or images+masks folder/archive, 'synthetic', 'download'")
    r.add_argument(
        "--nets", type=_csv, help="comma list of segnet,unet,unet2,effunet (default all)"
    )
    r.add_argument("--losses", type=_csv, help="comma list of bce,dice,focal,correlation,...")
    r.add_argument("--seeds", type=_ints, default=[0], help="comma list of seeds (default 0)")
    r.add_argument("--epochs", type=int, help="epochs per run (default: the preset's)")
    r.add_argument("--size", type=int, help="image side in pixels (multiple of 2**depth)")
    r.add_argument("--width", type=int, help="channels of the first stage")
    r.add_argument("--batch-size", type=int, help="images per batch (default: the preset's)")
    r.add_argument("--lr", type=float, help="Adam learning rate (default: the preset's)")
    r.add_argument("--weight-decay", type=float, help="Adam's L2 weight decay (default 1e-4)")
    r.add_argument("--encoder-lr-scale", type=float,
                   help="a pretrained encoder learns at lr x this (default: the net's recipe)")  # fmt: skip
    r.add_argument("--split", type=_fractions, help="train,val,test fractions (default .5,.25,.25)")
    r.add_argument(
        "--augment",
        choices=AUGMENTS,
        help="training augmentation: basic (default), strong (artefacts, colour, scale), mixed "
        "(half the batches strong), mixed_patchy (mixed, blotchy skin around small lesions), "
        "mixed_patchy_mild (the same, blotches half as strong)",
    )
    r.add_argument(
        "--init",
        metavar="CKPT",
        help="model checkpoint whose weights start every run (fine-tuning; same net)",
    )
    r.add_argument(
        "--swa",
        type=int,
        metavar="N",
        help="best.pt = the weights averaged over the last N epochs (SWA) instead of the best epoch",
    )
    r.add_argument(
        "--refit",
        action="store_true",
        help="train on the train and val images (a recipe already chosen on val); best.pt = the "
        "last epoch, or the --swa average",
    )
    r.add_argument("--out", default="runs", help="results folder (default runs)")
    r.add_argument("--diag", help="figures folder (default OUT/diag)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument(
        "--threads", type=int, help="CPU threads per run (default: the cores split over --jobs)"
    )
    r.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 on GPUs >= sm80 and CPUs with native bf16, fp16 on older GPUs, else fp32",
    )
    r.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        help="runs side by side in worker processes, or 'auto' (one per core on CPU; default 1)",
    )
    r.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local processes, or Ray tasks (pip install 'seglib[ray]')",
    )
    r.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    r.add_argument("--quiet", action="store_true", help="one line per run, no progress bars")
    r.add_argument("--no-report", action="store_true", help="skip the table and figures")
    r.add_argument("--no-tta", action="store_true", help="test without test-time augmentation")
    r.set_defaults(func=cmd_run)

    ev = sub.add_parser(
        "evaluate", help="re-test every finished run's best.pt (rewrites test.json)"
    )
    ev.add_argument("results", help="results folder written by run")
    ev.add_argument("--data", help="dataset path (default: the one saved in each run's config)")
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ev.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    ev.add_argument("--precision", default="auto", choices=PRECISIONS, help="as for run")
    ev.add_argument("--no-tta", action="store_true", help="test without test-time augmentation")
    ev.set_defaults(func=cmd_evaluate)

    rp = sub.add_parser("report", help="table, summary and figures from a results folder")
    rp.add_argument("results", help="results folder written by run")
    rp.add_argument("--diag", help="figures folder (default RESULTS/diag)")
    rp.add_argument("--md", help="markdown report path (default RESULTS/REPORT.md)")
    rp.add_argument("--device", default="cpu", help="device for the prediction examples")
    rp.add_argument(
        "--readme", help="also write the headline tables into this markdown file's marked section"
    )
    rp.add_argument("--section", default="results", help="README marker name (default results)")
    rp.set_defaults(func=cmd_report)

    pr = sub.add_parser("predict", help="write <stem>_mask.png for each image")
    pr.add_argument("images", nargs="+", help="image files (BMP, PNG, JPEG)")
    pr.add_argument("--weights", help="checkpoint (default: the shipped weights/best.pt)")
    pr.add_argument("--out", default=".", help="output folder (default .)")
    inference_options(pr)
    pr.add_argument("--overlay", action="store_true", help="also <stem>_overlay.png: outline")
    pr.set_defaults(func=cmd_predict)

    sc = sub.add_parser("score", help="predict every image of a labelled dataset and score it")
    sc.add_argument("--data", required=True, help="PH2 or images+masks folder or archive")
    sc.add_argument("--weights", help="checkpoint (default: the shipped weights/best.pt)")
    sc.add_argument("--out", help="per-image CSV (IoU, Dice, course score, ISIC metrics)")
    sc.add_argument("--split", default="all", help="all | train | val | test (checkpoint's split)")
    sc.add_argument("--worst", type=int, default=0, help="overlays of the K worst images by IoU")
    sc.add_argument("--overlays", help="folder for the --worst overlays (PNG)")
    sc.add_argument("--masks", help="also write each predicted mask here (<name>_mask.png)")
    inference_options(sc)
    sc.set_defaults(func=cmd_score)

    ex = sub.add_parser("export", help="ship the best run's weights (chosen by val IoU)")
    ex.add_argument("results", help="results folder written by run")
    ex.add_argument("--dest", help="weights file (default weights/best.pt)")
    ex.add_argument("--pipeline", choices=PIPELINE_CHOICES[1:],
                    help="record this inference pipeline as the weights' default")  # fmt: skip
    ex.set_defaults(func=cmd_export)

    s = sub.add_parser("synth", help="write a synthetic PH2-like dataset")
    s.add_argument("root", help="folder to write PH2Dataset/ (SyntheticISIC/, ...) into")
    s.add_argument(
        "--layout", default="ph2", choices=("ph2", "isic", "folders"), help="default ph2"
    )
    s.add_argument("--n", type=int, default=200, help="number of cases (default 200)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.set_defaults(func=cmd_synth)

    rb = sub.add_parser("robustness", help="score a checkpoint clean and under artefacts")
    rb.add_argument("weights", help="checkpoint (a run's best.pt or weights/best.pt)")
    rb.add_argument("--data", required=True, help="PH2 folder or archive (full-resolution files)")
    rb.add_argument("--split", default="test", choices=("test", "val"), help="default test")
    rb.add_argument("--kinds", type=_csv, help="comma list of artefact kinds (default all)")
    rb.add_argument("--json", help="also write the result to this JSON file")
    rb.add_argument("--card", help="also update the table in this model card (weights/README.md)")
    rb.add_argument("--seed", type=int, default=0, help="artefact seed (default 0)")
    inference_options(rb)
    rb.set_defaults(func=cmd_robustness)

    sub.add_parser("bench", help="throughput: plain loop vs seglib's fit (see benchmarks/)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the benchmark has its own parser (seglib/bench/throughput.py)
        from seglib.bench.throughput import main as bench_main

        return bench_main(argv[1:])
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError, KeyboardInterrupt) as e:  # OSError: names its file
        if isinstance(e, KeyboardInterrupt):
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            return 130
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
