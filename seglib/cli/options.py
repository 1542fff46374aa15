"""The command line's parser, built one command at a time from shared option groups.

Torch is not imported here: ``seglib --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse

import seglib

# "basic" + seglib.augment.strong.PATCHES, spelt out so that the CLI starts without torch
AUGMENTS = ("basic", "strong", "mixed", "mixed_patchy", "mixed_patchy_mild")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # seglib.runtime.PRECISIONS, without importing torch
PIPELINE_CHOICES = ("auto", "plain", "robust")  # seglib.infer.postprocess.PIPELINES and "auto"
PIPELINE_HELP = "pipeline (default auto: the checkpoint's; docs/explanation/inference.md)"
THREADS_HELP = "CPU threads (default: the cores other running processes leave free)"
THREADS_HELP_RUN = "CPU threads per run (default: the free cores split over --jobs)"
PRECISION_HELP = "auto (default): the runtime's choice, as for run (bf16 where the CPU has it)"

DESCRIPTION = (
    "Skin-lesion segmentation on PH2 or your own images: train the grid of nets x losses (run), "
    "re-test it (evaluate), write tables, summary and figures (report), segment images "
    "(predict), score a model against expert masks (score), ship weights (export), write "
    "synthetic data (synth), resize PH2 into a small archive (prepare), test a model under "
    "image artefacts (robustness), or measure speed (bench). Use python -m seglib COMMAND "
    "--help for a command's options."
)


def csv_list(text: str) -> list[str]:
    return [t.strip().lower() for t in text.split(",") if t.strip()]


def ints_list(text: str) -> list[int]:
    try:
        return [int(t) for t in csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def jobs(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def fractions(text: str) -> list[float]:
    try:
        fr = [float(t) for t in csv_list(text)]
    except ValueError:
        fr = []
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(
            f"expected train,val,test fractions summing to 1 (e.g. 0.6,0.2,0.2), got {text!r}"
        )
    return fr


# --- shared option groups ----------------------------------------------------------------------


def inference_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs a model on images (predict, score, robustness)."""
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--no-tta", action="store_true", help="no test-time augmentation (faster)")
    p.add_argument("--pipeline", default="auto", choices=PIPELINE_CHOICES, help=PIPELINE_HELP)


def weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="checkpoint (default: the shipped weights/best.pt)")


# --- one builder per command -------------------------------------------------------------------


def _run_data(r: argparse.ArgumentParser) -> None:
    """``run``: what to train on and which cells."""
    r.add_argument("--preset", default="smoke", help="smoke | cpu | course (default smoke)")
    r.add_argument(
        "--data",
        help="PH2 or images+masks folder/archive, 'synthetic', 'download' (PH2), "
        "'download-isic2018'; several separated by commas train on their union",
    )
    r.add_argument("--data-weights", type=ints_list,
                   help="with several --data: each one's repeats per epoch (e.g. 4,1)")  # fmt: skip
    r.add_argument("--split", type=fractions,
                   help="train,val,test fractions (default .5,.25,.25; .8,.1,.1 for a folder "
                   "beside others; PH2 always 100/50/50)")  # fmt: skip
    r.add_argument(
        "--nets",
        type=csv_list,
        help="comma list of segnet,unet,unet2,effunet,effunet_lite2 (default: the first four)",
    )
    r.add_argument("--losses", type=csv_list, help="comma list of bce,dice,focal,correlation,...")
    r.add_argument("--seeds", type=ints_list, default=[0], help="comma list of seeds (default 0)")


def _run_recipe(r: argparse.ArgumentParser) -> None:
    """``run``: the training recipe (each default: the preset's)."""
    r.add_argument("--epochs", type=int, help="epochs per run (default: the preset's)")
    r.add_argument("--size", type=int, help="image side in pixels (multiple of 2**depth)")
    r.add_argument("--width", type=int, help="channels of the first stage")
    r.add_argument("--batch-size", type=int, help="images per batch (default: the preset's)")
    r.add_argument("--lr", type=float, help="Adam learning rate (default: the preset's)")
    r.add_argument("--weight-decay", type=float, help="Adam's L2 weight decay (default 1e-4)")
    r.add_argument("--encoder-lr-scale", type=float,
                   help="a pretrained encoder learns at lr x this (default: the net's recipe)")  # fmt: skip
    r.add_argument(
        "--augment",
        choices=AUGMENTS,
        help="training augmentation: basic (default), strong (artefacts, colour, scale), mixed "
        "(half the batches strong), mixed_patchy (mixed, blotchy skin around small lesions), "
        "mixed_patchy_mild (the same, blotches half as strong)",
    )
    r.add_argument("--colour", choices=("none", "sog"),
                   help="colour correction of every input, in training and in every later use "
                   "of the model: none (default) or sog (Shades of Gray, p = 6)")  # fmt: skip
    r.add_argument("--init", metavar="CKPT",
                   help="model checkpoint whose weights start every run (fine-tuning; same net)")  # fmt: skip
    r.add_argument("--swa", type=int, metavar="N",
                   help="best.pt = the weights averaged over the last N epochs (SWA) instead of "
                   "the best epoch")  # fmt: skip
    r.add_argument("--refit", action="store_true",
                   help="train on the train and val images (a recipe already chosen on val); "
                   "best.pt = the last epoch, or the --swa average")  # fmt: skip


def _run_machine(r: argparse.ArgumentParser) -> None:
    """``run``: where its output goes and what it runs on."""
    r.add_argument("--out", help="results folder (default runs/PRESET, e.g. runs/smoke)")
    r.add_argument("--diag", help="figures folder (default OUT/diag)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--threads", type=int, help=THREADS_HELP_RUN)
    r.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 on GPUs >= sm80 and CPUs with native bf16, fp16 on older "
                   "GPUs, else fp32")  # fmt: skip
    r.add_argument("--jobs", type=jobs, default=1,
                   help="runs side by side in worker processes, or 'auto' (one per core on CPU; "
                   "default 1)")  # fmt: skip
    r.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local processes, or Ray tasks (pip install 'seglib[ray]')")  # fmt: skip
    r.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    r.add_argument("--quiet", action="store_true", help="one line per run, no progress bars")
    r.add_argument("--no-report", action="store_true", help="skip the table and figures")
    r.add_argument("--no-tta", action="store_true", help="test without test-time augmentation")


def _evaluate(ev: argparse.ArgumentParser) -> None:
    ev.add_argument("results", help="results folder written by run")
    ev.add_argument("--data", help="dataset path (default: the one saved in each run's config)")
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ev.add_argument("--threads", type=int, help=THREADS_HELP)
    ev.add_argument("--precision", default="auto", choices=PRECISIONS, help="as for run")
    ev.add_argument("--no-tta", action="store_true", help="test without test-time augmentation")


def _report(rp: argparse.ArgumentParser) -> None:
    rp.add_argument("results", help="results folder written by run")
    rp.add_argument("--diag", help="figures folder (default RESULTS/diag)")
    rp.add_argument("--md", help="markdown report path (default RESULTS/REPORT.md)")
    rp.add_argument("--device", default="cpu", help="device for the prediction examples")
    rp.add_argument(
        "--readme", help="also write the headline tables into this markdown file's marked section"
    )
    rp.add_argument("--section", default="results", help="README marker name (default results)")
    rp.add_argument("--compare", metavar="OTHER",
                    help="instead: print each cell's paired difference RESULTS - OTHER with its "
                    "95%% interval (e.g. a reproduction against results/cpu)")  # fmt: skip


def _predict(pr: argparse.ArgumentParser) -> None:
    pr.add_argument("images", nargs="+", help="image files (BMP, PNG, JPEG)")
    weights_option(pr)
    pr.add_argument("--out", default=".", help="output folder (default .)")
    inference_options(pr)
    pr.add_argument("--overlay", action="store_true", help="also <stem>_overlay.png: outline")


def _score(sc: argparse.ArgumentParser) -> None:
    sc.add_argument("--data", required=True,
                    help="PH2 or images+masks folder or archive, or download-isic2018")  # fmt: skip
    weights_option(sc)
    sc.add_argument("--out", help="per-image CSV (IoU, Dice, course score, ISIC metrics)")
    sc.add_argument("--split", default="all", help="all | train | val | test (checkpoint's split)")
    sc.add_argument("--worst", type=int, default=0, help="overlays of the K worst images by IoU")
    sc.add_argument("--overlays", help="folder for the --worst overlays (PNG)")
    sc.add_argument("--masks", help="also write each predicted mask here (<name>_mask.png)")
    inference_options(sc)


def _export(ex: argparse.ArgumentParser) -> None:
    ex.add_argument("results", nargs="?", help="results folder written by run")
    ex.add_argument("--onnx", help="write the weights as ONNX here instead (docs/how-to/export.md)")
    ex.add_argument("--weights", help="with --onnx: checkpoint (default: the shipped model)")
    ex.add_argument("--dest", help="weights file (default weights/best.pt)")
    ex.add_argument("--pipeline", choices=PIPELINE_CHOICES[1:],
                    help="record this inference pipeline as the weights' default")  # fmt: skip


def _synth(s: argparse.ArgumentParser) -> None:
    s.add_argument("root", help="folder to write PH2Dataset/ (SyntheticISIC/, ...) into")
    s.add_argument(
        "--layout", default="ph2", choices=("ph2", "isic", "folders"), help="default ph2"
    )
    s.add_argument("--n", type=int, default=200, help="number of cases (default 200)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _prepare(pp: argparse.ArgumentParser) -> None:
    pp.add_argument("source", help="PH2 folder or archive (full size)")
    pp.add_argument("dest", help="TAR file to write (e.g. gpu/PH2-256.tar)")
    pp.add_argument("--size", type=int, default=256, help="square side in pixels (default 256)")


def _robustness(rb: argparse.ArgumentParser) -> None:
    rb.add_argument("weights", help="checkpoint (a run's best.pt or weights/best.pt)")
    rb.add_argument("--data", required=True, help="PH2 folder or archive (full-resolution files)")
    rb.add_argument("--split", default="test", choices=("test", "val"), help="default test")
    rb.add_argument("--kinds", type=csv_list, help="comma list of artefact kinds (default all)")
    rb.add_argument("--json", help="also write the result to this JSON file")
    rb.add_argument("--card", help="also update the table in this model card (weights/README.md)")
    rb.add_argument("--seed", type=int, default=0, help="artefact seed (default 0)")
    inference_options(rb)


COMMANDS = (
    ("run", "train the grid (resumes), then write the report", (_run_data, _run_recipe,
                                                                _run_machine)),
    ("evaluate", "re-test every finished run's best.pt (rewrites test.json)", (_evaluate,)),
    ("report", "table, summary and figures from a results folder", (_report,)),
    ("predict", "write <stem>_mask.png for each image", (_predict,)),
    ("score", "predict every image of a labelled dataset and score it", (_score,)),
    ("export", "ship the best run's weights (by val IoU), or as ONNX", (_export,)),
    ("synth", "write a synthetic PH2-like dataset", (_synth,)),
    ("prepare", "write PH2 resized to one size as a small TAR (for a GPU)", (_prepare,)),
    ("robustness", "score a checkpoint clean and under artefacts", (_robustness,)),
    ("bench", "throughput: plain loop vs seglib's fit (see benchmarks/)", ()),
)  # fmt: skip
"""Each command: its name, its one-line help and the builders of its options, in order."""


def parser(handlers: dict | None = None) -> argparse.ArgumentParser:
    """The command line; ``handlers`` maps a command's name to the function that runs it."""
    p = argparse.ArgumentParser(prog="python -m seglib", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"seglib {seglib.__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, text, builders in COMMANDS:
        cmd = sub.add_parser(name, help=text)
        for build in builders:
            build(cmd)
        if handlers and name in handlers:
            cmd.set_defaults(func=handlers[name])
    return p
