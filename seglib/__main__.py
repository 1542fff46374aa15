"""Command line of seglib: python -m seglib {run,evaluate,report,predict,export,synth,bench} --help"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DESCRIPTION = (
    "Skin-lesion segmentation on PH2: train the grid of nets x losses (run), re-test it "
    "(evaluate), write tables, summary and figures (report), segment images (predict), ship "
    "weights (export), write synthetic data (synth), or measure throughput (bench). "
    "Use python -m seglib COMMAND --help for a command's options."
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


def cmd_run(a) -> None:
    from . import experiment

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    cfgs = experiment.configs(
        a.preset,
        nets=a.nets or experiment.NETS,
        losses_=a.losses or experiment.LOSSES,
        seeds=a.seeds,
        data=a.data,
        epochs=a.epochs,
        size=a.size,
        width=a.width,
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
    )
    experiment.run_grid(cfgs, a.out, device=a.device, quiet=a.quiet or None, tta=not a.no_tta)
    if not a.no_report:
        cmd_report(argparse.Namespace(results=a.out, diag=a.diag, md=None, device=a.device))


def cmd_evaluate(a) -> None:
    from . import experiment

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    experiment.retest(Path(a.results), data=a.data, device=a.device, tta=not a.no_tta)


def cmd_report(a) -> None:
    from . import plots, report, store

    results = Path(a.results)
    if not results.is_dir():
        raise FileNotFoundError(f"{results}: no such results folder")
    md = Path(a.md) if a.md else results / "REPORT.md"
    diag = Path(a.diag) if a.diag else results / "diag"
    written = plots.write_all(results, diag)
    from .examples import write_predictions

    written += write_predictions(results, diag, device=a.device)
    text = report.write_report(results, md)
    if getattr(a, "readme", None):
        link = Path(os.path.relpath(md.resolve(), Path(a.readme).resolve().parent)).as_posix()
        head = report.headline(store.load_runs(results), readme=True)
        head += f"\nThe full report (paired tests, summary, per-run details): [{link}]({link}).\n"
        report.update_readme(a.readme, head, section=a.section)
    print(text)
    print(f"wrote {md} and {len(written)} figures in {diag}")


def cmd_predict(a) -> None:
    from .predict import DEFAULT_WEIGHTS, predict_files

    weights = a.weights or DEFAULT_WEIGHTS
    for p in predict_files(weights, a.images, a.out, device=a.device, tta=not a.no_tta):
        print(p)


def cmd_export(a) -> None:
    from .predict import DEFAULT_WEIGHTS, export_weights

    dest = Path(a.dest) if a.dest else DEFAULT_WEIGHTS
    print(f"exported {export_weights(Path(a.results), dest)} -> {dest}")


def cmd_synth(a) -> None:
    from .data import make_synthetic_ph2

    print(make_synthetic_ph2(a.root, n=a.n, seed=a.seed))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m seglib", description=DESCRIPTION)
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="train the grid (resumes), then write the report")
    r.add_argument("--preset", default="smoke", help="smoke | cpu | course (default smoke)")
    r.add_argument("--data", help="PH2 folder or archive, 'synthetic' or 'download'")
    r.add_argument("--nets", type=_csv, help="comma list of segnet,unet,unet2 (default all)")
    r.add_argument("--losses", type=_csv, help="comma list of bce,dice,focal,correlation,...")
    r.add_argument("--seeds", type=_ints, default=[0], help="comma list of seeds (default 0)")
    r.add_argument("--epochs", type=int, help="epochs per run (default: the preset's)")
    r.add_argument("--size", type=int, help="image side in pixels (multiple of 2**depth)")
    r.add_argument("--width", type=int, help="channels of the first stage")
    r.add_argument("--batch-size", type=int, help="images per batch (default: the preset's)")
    r.add_argument("--lr", type=float, help="Adam learning rate (default: the preset's)")
    r.add_argument("--weight-decay", type=float, help="Adam's L2 weight decay (default 1e-4)")
    r.add_argument("--out", default="runs", help="results folder (default runs)")
    r.add_argument("--diag", help="figures folder (default OUT/diag)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
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
    pr.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    pr.add_argument("--no-tta", action="store_true", help="no test-time augmentation (8x faster)")
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="ship the best run's weights (chosen by val IoU)")
    ex.add_argument("results", help="results folder written by run")
    ex.add_argument("--dest", help="weights file (default weights/best.pt)")
    ex.set_defaults(func=cmd_export)

    s = sub.add_parser("synth", help="write a synthetic PH2-like dataset")
    s.add_argument("root", help="folder to write PH2Dataset/ into")
    s.add_argument("--n", type=int, default=200, help="number of cases (default 200)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.set_defaults(func=cmd_synth)

    sub.add_parser("bench", help="throughput: plain loop vs seglib's fit (see benchmarks/)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the benchmark has its own parser (benchmarks/throughput.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from benchmarks.throughput import main as bench_main

        return bench_main(argv[1:])
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyboardInterrupt) as e:
        if isinstance(e, KeyboardInterrupt):
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            return 130
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
