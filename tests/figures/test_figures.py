"""plots: file names, zoom rule, legends, fixed colours, seed bands, byte-stable SVG."""

import json

import numpy as np
import pytest

from seglib.figures import curves, predictions, style
from seglib.figures import intervals as statfigs
from seglib.store import load_runs

NETS = ["segnet", "unet", "unet2"]
LOSSES = ["bce", "dice", "focal", "correlation"]
ZOOMED = {("segnet", "bce"), ("unet", "focal"), ("unet2", "correlation")}  # early epochs dominate
EPOCHS = 20


def history(early: bool, shift: float = 0.0) -> list[dict]:
    rows = []
    for e in range(1, EPOCHS + 1):
        # linear losses never need a zoom; 5 * 0.5**e + c is dominated by its first epochs
        tl = 5 * 0.5**e + 0.1 if early else 0.5 - 0.02 * e
        vl = 5 * 0.5**e + 0.2 if early else 0.6 - 0.015 * e
        s = 0.8 * (1 - 0.8**e) + shift
        rows.append(
            dict(epoch=e, train_loss=tl, val_loss=vl, train_iou=s + 0.1, val_iou=s + 0.02,
                 val_dice=s + 0.05, val_score=s, lr=1e-3, seconds=1.0)
        )  # fmt: skip
    return rows


def write_run(out, net, loss, seed, hist, score=0.5, best_epoch=15):
    d = out / f"{net}_{loss}_s{seed}"
    d.mkdir(parents=True)
    cfg = dict(net=net, loss=loss, seed=seed, size=64, epochs=EPOCHS)
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "history.json").write_text(json.dumps(hist))
    test = dict(
        iou=score, dice=score, score=score, best_epoch=best_epoch, params=10, train_seconds=20
    )
    (d / "test.json").write_text(json.dumps(test))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    for net in NETS:
        for loss in LOSSES:
            write_run(out, net, loss, 0, history((net, loss) in ZOOMED), score=0.5)
    write_run(out, "unet", "bce", 1, history(False, shift=0.1), score=0.7, best_epoch=12)
    return out


@pytest.fixture(scope="module")
def written(results, tmp_path_factory):
    diag = tmp_path_factory.mktemp("diag")
    (diag / "unet_bce_loss_subset.svg").write_text("stale")  # unet_bce needs no zoom
    return diag, curves.write_all(results, diag)


def test_needs_zoom_rule():
    e = np.arange(1, 21)
    assert curves.needs_zoom(5 * 0.5**e + 0.1)  # first epochs dominate
    assert not curves.needs_zoom(1.0 - 0.04 * e)  # linear: tail range ~3/4 of full
    assert not curves.needs_zoom(np.full(20, 0.3))  # flat
    assert not curves.needs_zoom([5.0, 1.0, 0.5, 0.4, 0.3])  # too short to judge
    spike = 1.0 - 0.01 * e
    spike[16] = 10.0  # one late spike squeezes the trend
    assert curves.needs_zoom(spike)
    assert curves.needs_zoom(np.vstack([5 * 0.5**e + 0.1, 5 * 0.5**e + 0.2]))
    lo, hi = curves.zoom_limits(spike)
    assert lo == pytest.approx(spike[5:].min()) and hi < 1.0


def test_write_all_names(written):
    diag, paths = written
    expected = {f"{n}_{lo}_{kind}.svg" for n in NETS for lo in LOSSES for kind in ("loss", "score")}
    expected |= {f"{n}_{lo}_loss_subset.svg" for n, lo in ZOOMED}
    expected |= {f"{n}_score.svg" for n in NETS} | {f"{lo}_score.svg" for lo in LOSSES}
    expected |= {"best_score.svg"}
    assert len(expected) == 35
    assert {p.name for p in paths} == expected
    assert {p.name for p in diag.iterdir()} == expected  # the stale subset file is gone
    assert all(p.stat().st_size < 200_000 for p in paths)


def test_every_svg_has_a_legend(written):
    _, paths = written
    for p in paths:
        text = p.read_text()
        assert 'id="legend_1"' in text, p.name
        assert "Date" not in text and "Matplotlib v" not in text


def test_figures_axes_legends_colours(results):
    figs = curves.figures(load_runs(results))
    for name, fig in figs.items():
        (ax,) = fig.axes
        assert ax.get_legend() is not None, name
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel(), name
    bce = figs["bce_score.svg"].axes[0]
    assert [ln.get_color() for ln in bce.lines] == [style.NET_COLORS[n] for n in NETS]
    unet = figs["unet_score.svg"].axes[0]
    assert [ln.get_color() for ln in unet.lines] == [style.LOSS_COLORS[lo] for lo in LOSSES]
    best = figs["best_score.svg"].axes[0]
    widths = {ln.get_label(): ln.get_linewidth() for ln in best.lines}
    top = max(widths, key=widths.get)
    assert top.startswith("UNet+BCE") and "best" in top  # two seeds with the higher mean score


def test_seed_band_and_best_epochs(results):
    runs = [r for r in load_runs(results) if r["name"].startswith("unet_bce_")]
    ax = curves.score_figure(runs).axes[0]
    mean = np.mean([[h["val_score"] for h in r["history"]] for r in runs], axis=0)
    assert np.allclose(ax.lines[0].get_ydata(), mean)
    assert len(ax.collections) == 3  # a min-max band per series
    marks = sorted(ln.get_xdata()[0] for ln in ax.lines if ln.get_linestyle() == "-.")
    assert marks == [12, 15]


def test_unknown_loss_and_colour_stable(tmp_path):
    write_run(tmp_path, "unet", "tversky", 0, history(False))
    write_run(tmp_path, "unet", "bce", 0, history(False))
    figs = curves.figures(load_runs(tmp_path))
    assert {"unet_tversky_loss.svg", "tversky_score.svg", "bce_score.svg"} <= set(figs)
    labels = [ln.get_label() for ln in figs["unet_score.svg"].axes[0].lines]
    assert labels == ["BCE", "Tversky"]  # known losses first
    assert style.color("tversky") == style.color("tversky")
    assert style.color("tversky") not in {**style.NET_COLORS, **style.LOSS_COLORS}.values()


def _predictions():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 3, 200, 300), dtype=np.uint8)
    masks = np.zeros((2, 1, 200, 300), dtype=np.uint8)
    masks[:, :, 50:150, 80:220] = 1
    preds = {"UNet+BCE": masks.astype(bool), "UNet+Dice": np.roll(masks, 40, axis=3) > 0}
    return images, masks, preds


def test_plot_predictions(tmp_path):
    images, masks, preds = _predictions()
    fig = predictions.plot_predictions(images, masks, preds, tmp_path / "p.svg", titles=["a", "b"])
    assert len(fig.axes) == 2 * 3 and fig.legends
    assert all(max(ax.images[0].get_array().shape[:2]) <= 128 for ax in fig.axes)
    assert "IoU 1.00" in fig.axes[1].get_title()
    assert (tmp_path / "p.svg").stat().st_size < 400_000


def _with_images(tmp_path):
    """Two cells on 8 test images: UNet+BCE (two seeds) and SegNet+BCE = UNet+BCE seed 0 - 0.2
    on every image (so distinguishably below it)."""
    base = np.linspace(0.55, 0.95, 8)
    for net, seed, values in (
        ("unet", 0, base),
        ("unet", 1, base[::-1]),
        ("segnet", 0, base - 0.2),
    ):
        write_run(tmp_path, net, "bce", seed, history(False), score=float(values.mean()))
        d = tmp_path / f"{net}_bce_s{seed}" / "test.json"
        test = json.loads(d.read_text())
        names = [f"IMD{i:03d}" for i in range(8)]
        test |= dict(iou_per_image=list(values), score_per_image=list(values), names=names)
        d.write_text(json.dumps(test))
    return load_runs(tmp_path), base


def test_per_image_and_interval_figures(tmp_path):
    runs, base = _with_images(tmp_path)
    figs = curves.figures(runs)
    (ax,) = figs["test_iou_per_image.svg"].axes
    pooled = np.concatenate([base, base[::-1]])  # seeds pooled into one box
    medians = [ln.get_ydata()[0] for ln in ax.lines if ln.get_color() == "#333333"]
    assert medians == pytest.approx([np.median(base - 0.2), np.median(pooled)])
    means = [ln.get_ydata()[0] for ln in ax.lines if ln.get_linewidth() == 1.6]
    assert means == pytest.approx([np.mean(base - 0.2), np.mean(pooled)])
    assert ax.get_legend() is not None
    score_ax, iou_ax = figs["test_intervals.svg"].axes
    assert figs["test_intervals.svg"].legends
    # rows top to bottom SegNet+BCE, UNet+BCE; the best (UNet+BCE) black and filled, the other
    # open (its paired difference is -0.2 on every image: interval [-0.2, -0.2])
    faces = [c.get_children()[0].get_markerfacecolor() for c in score_ax.containers]
    assert faces == ["white", "black"]
    xs = [c.get_children()[0].get_xdata()[0] for c in score_ax.containers]
    assert xs == pytest.approx([base.mean() - 0.2, base.mean()])
    assert [t.get_text() for t in score_ax.get_yticklabels()] == ["SegNet+BCE", "UNet+BCE"]


def test_svg_bytes_are_stable(results, tmp_path):
    def build():
        runs = load_runs(results)
        unet_bce = [r for r in runs if r["name"].startswith("unet_bce_")]
        return {
            "score.svg": curves.score_figure(unet_bce),
            "zoom.svg": curves.loss_subset_figure(
                [r for r in runs if r["name"] == "unet_focal_s0"]
            ),
            "best.svg": curves.best_figure(runs),
            "pred.svg": predictions.plot_predictions(*_predictions()),
            "intervals.svg": statfigs.interval_figure(runs_images),
            "per_image.svg": statfigs.per_image_figure(runs_images),
        }

    runs_images, _ = _with_images(tmp_path / "images")

    for i in (1, 2):
        for name, fig in build().items():
            style.save(fig, tmp_path / str(i) / name)
    for name in ("score.svg", "zoom.svg", "best.svg", "pred.svg", "intervals.svg", "per_image.svg"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
