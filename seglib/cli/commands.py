"""What each command does: one ``cmd_<name>(args)`` per command of :mod:`seglib.cli.options`.

Each imports what it needs when it runs, so that ``--help`` and a bad option never load torch.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from seglib.cli.options import AUGMENTS


def default_out(preset: str) -> str:
    """``run``'s results folder without ``--out`` (the notebook's without ``OUT``)."""
    return f"runs/{preset}"


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
        data_weights=a.data_weights,
        init=a.init and str(Path(a.init).resolve()),
        swa=a.swa,
        refit=a.refit or None,
        colour=a.colour,
        augment={"basic": True, **{k: k for k in AUGMENTS[1:]}}.get(
            a.augment
        ),  # basic: configs unchanged
    )


def inference_options(a):
    """The :class:`seglib.infer.options.InferenceOptions` of ``predict``, ``score`` and
    ``robustness`` from their arguments ``a``."""
    from seglib.infer.options import InferenceOptions

    return InferenceOptions(
        device=a.device, precision=a.precision, tta=not a.no_tta, pipeline=a.pipeline
    )


def grid_options(a):
    """``run``'s :class:`seglib.engine.options.GridOptions` from its arguments ``a``."""
    from seglib.engine.options import GridOptions

    return GridOptions(
        device=a.device,
        precision=a.precision,
        tta=not a.no_tta,
        quiet=a.quiet or None,
        jobs=a.jobs,
        threads=a.threads,
        executor=a.executor,
        ray_address=a.ray_address,
    )


def cmd_run(a) -> None:
    from seglib.engine import grid

    cfgs = run_configs(a)
    a.out = a.out or default_out(a.preset)
    failed = None
    try:
        grid.run_grid(cfgs, a.out, grid_options(a))
    except grid.GridFailed as e:  # report the runs that finished, then exit 2
        failed = e
    if not a.no_report:
        cmd_report(argparse.Namespace(results=a.out, diag=a.diag, md=None, device=a.device))
    if failed:
        raise failed


def cmd_evaluate(a) -> None:
    from seglib.engine import grid
    from seglib.runtime import use_cores

    use_cores(a.threads)
    grid.retest(
        Path(a.results), data=a.data, device=a.device, tta=not a.no_tta, precision=a.precision
    )


def cmd_report(a) -> None:
    from seglib import store
    from seglib.figures import curves
    from seglib.report import markdown

    results = Path(a.results)
    for folder in (results, *([Path(a.compare)] if getattr(a, "compare", None) else [])):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder}: no such results folder; give the --out folder of a `seglib run`"
            )
    if getattr(a, "compare", None):
        from seglib.report.compare import compare_markdown

        names = (str(results), str(a.compare))
        print(compare_markdown(store.load_runs(results), store.load_runs(Path(a.compare)), names))
        return
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
    predict_files(weights, a.images, a.out, inference_options(a), overlay=a.overlay,
                  on_written=print)  # fmt: skip


def cmd_score(a) -> None:
    from seglib.data.ph2 import data_root
    from seglib.errors import SomeFilesFailed
    from seglib.infer.predict import DEFAULT_WEIGHTS
    from seglib.infer.score import ScoreOutputs, score, summary_lines, write_csv
    from seglib.runtime import use_cores

    use_cores(a.threads)
    skipped: list[str] = []
    data = data_root(a.data) if a.data in ("download", "download-isic2018") else Path(a.data)
    outputs = ScoreOutputs(masks=a.masks and Path(a.masks), overlays=a.overlays, worst=a.worst)
    source, rows = score(a.weights or DEFAULT_WEIGHTS, data, split=a.split,
                         options=inference_options(a), outputs=outputs, skipped=skipped,
                         log=print)  # fmt: skip
    if rows:  # the good images are scored and written whatever failed beside them
        if a.out:
            write_csv(rows, Path(a.out))
        print("\n".join(summary_lines(source, rows, a.split, not a.no_tta)))
        if a.out:
            print(f"wrote {a.out}")
        if a.overlays and a.worst:
            from seglib.figures.worst import worst_page

            page = worst_page(Path(a.overlays), {r["name"]: r["iou"] for r in rows},
                              Path(a.overlays) / "worst.png")  # fmt: skip
            print(f"wrote {page}")
    if skipped:
        raise SomeFilesFailed("images not scored", skipped, len(rows) + len(skipped))


def cmd_export(a) -> None:
    from seglib.infer.predict import DEFAULT_WEIGHTS, export_weights

    if a.onnx:  # the weights (default: the shipped ones) as an ONNX file
        from seglib.infer.onnx_export import export_checkpoint

        return print(f"wrote {export_checkpoint(a.weights or DEFAULT_WEIGHTS, Path(a.onnx))}")
    if not a.results:
        raise ValueError("export: give a results folder, or --onnx PATH")
    dest = Path(a.dest) if a.dest else DEFAULT_WEIGHTS
    print(f"exported {export_weights(Path(a.results), dest, a.pipeline)} -> {dest}")


def cmd_synth(a) -> None:
    from seglib.data.synth import make_synthetic_pairs, make_synthetic_ph2

    if a.layout == "ph2":
        print(make_synthetic_ph2(a.root, n=a.n, seed=a.seed))
    else:
        print(make_synthetic_pairs(a.root, n=a.n, seed=a.seed, layout=a.layout))


def cmd_prepare(a) -> None:
    from seglib.data.resized import write_resized

    print(write_resized(Path(a.source), Path(a.dest), a.size))


def cmd_robustness(a) -> None:
    from seglib.robustness.suite import run

    run(a, inference_options(a))
