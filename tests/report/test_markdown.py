"""report: tables (best cell, mean ± std), original/comparison tables, spikes, convergence, summary."""

import json
import statistics

import pytest

from seglib.report import analysis, markdown, summary, tables
from seglib.store import load_runs

NETS = ["segnet", "unet", "unet2"]
LOSSES = ["bce", "dice", "focal", "correlation"]
EPOCHS = 20
BEST = ("unet2", "focal")  # known best cell
CLOSE = ("unet2", "correlation")  # 0.01 below the best, its per-image pattern mirrored
SEEDS = {("unet", "bce"): [0.70, 0.74]}  # the one cell with two seeds (flat per image)
PATTERN = [0.05, -0.05] * 5  # per-image offsets (10 test images, mean 0)
SPIKY = "unet_focal_s0"  # val score 0.7 -> 0.3 at epoch 12, back to 0.7 at epoch 14
SMOOTH = [0.8 * (1 - 0.8**e) for e in range(1, EPOCHS + 1)]


def score_of(net, loss):
    if (net, loss) == CLOSE:
        return 0.89
    return 0.9 if (net, loss) == BEST else 0.1 + 0.05 * NETS.index(net) + 0.01 * LOSSES.index(loss)


def history(val_score, gap):
    return [
        dict(epoch=e, train_loss=0.3, val_loss=0.4, train_iou=s + gap, val_iou=s, val_dice=s,
             val_score=s, lr=1e-3, seconds=1.0)
        for e, s in enumerate(val_score, start=1)
    ]  # fmt: skip


def per_image(net, loss, score):
    """Per-image test values: ``score`` plus ``PATTERN`` (mirrored for CLOSE, none for the
    two-seed cell), so paired differences are hand-computable."""
    sign = {CLOSE: -1, ("unet", "bce"): 0}.get((net, loss), 1)
    v = [score + sign * e for e in PATTERN]
    return dict(score_per_image=v, iou_per_image=[x - 0.05 for x in v],
                names=[f"IMD{i:03d}" for i in range(len(v))])  # fmt: skip


def write_run(out, net, loss, seed, score, val_score=SMOOTH, gap=0.1, finished=True, images=True):
    d = out / f"{net}_{loss}_s{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(dict(net=net, loss=loss, seed=seed, epochs=EPOCHS)))
    (d / "history.json").write_text(json.dumps(history(val_score, gap)))
    if finished:
        test = dict(score=score, iou=score - 0.05, dice=score + 0.05, best_epoch=EPOCHS,
                    params=1000 * (NETS.index(net) + 1), train_seconds=600)  # fmt: skip
        if images:
            test |= per_image(net, loss, score)
        (d / "test.json").write_text(json.dumps(test))


def spiky_curve():
    v = [min(0.7, 0.1 * e) for e in range(1, EPOCHS + 1)]
    v[11], v[12] = 0.3, 0.5  # epochs 12 and 13
    return v


@pytest.fixture
def runs(tmp_path):
    for net in NETS:
        for loss in LOSSES:
            gap = 0.0 if net == "unet2" else 0.1  # 9 of 13 runs overfit
            for seed, score in enumerate(SEEDS.get((net, loss), [score_of(net, loss)])):
                curve = spiky_curve() if f"{net}_{loss}_s{seed}" == SPIKY else SMOOTH
                write_run(tmp_path, net, loss, seed, score, curve, gap)
    return load_runs(tmp_path)


def cell(md, net, loss):
    """Cell text of a markdown table by display names."""
    lines = md.splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cols = [c.strip() for c in line.strip("|").split("|")]
        if cols[0] == net:
            return cols[head.index(loss)]
    raise KeyError(net)


def test_find_spikes_hand_made():
    v = [0.2, 0.5, 0.7, 0.72, 0.3, 0.4, 0.7, 0.71, 0.72]
    ((epoch, depth),) = analysis.find_spikes(v)
    assert epoch == 5 and depth == pytest.approx(0.42)
    assert analysis.find_spikes(SMOOTH) == []
    assert analysis.find_spikes([0.5, 0.55, 0.6, 0.58, 0.61, 0.6]) == []  # noise below `drop`
    slow = [0.7] * 3 + [0.4] * 7 + [0.7] * 3  # recovers after 7 epochs > window 5
    assert analysis.find_spikes(slow) == []
    assert analysis.find_spikes(slow, window=7) == [(4, pytest.approx(0.3))]
    assert analysis.find_spikes([0.5, 0.7, 0.7, 0.2]) == []  # a final drop never recovers
    two = [0.6, 0.6, 0.4, 0.6, 0.6, 0.3, 0.2, 0.6]
    assert analysis.find_spikes(two, epochs=range(11, 19)) == [
        (13, pytest.approx(0.2)),
        (17, pytest.approx(0.4)),
    ]


def test_convergence_epoch_hand_made():
    v = [0.1, 0.5, 0.9, 0.96, 1.0, 0.98]
    assert analysis.convergence_epoch(v) == 4  # first >= 0.95 * 1.0
    assert analysis.convergence_epoch(v, frac=0.9) == 3
    assert analysis.convergence_epoch(v, epochs=[10, 20, 30, 40, 50, 60]) == 40
    assert analysis.convergence_epoch([]) is None


def test_table_best_cell_bold(runs):
    md = tables.table(runs, "score")
    assert cell(md, "UNet2", "Focal") == "**0.900**"
    assert md.count("**") == 2
    assert md.splitlines()[0] == "| | BCE | Dice | Focal | Correlation |"
    assert cell(md, "SegNet", "Dice") == f"{score_of('segnet', 'dice'):.3f}"


def test_table_mean_std_over_seeds(runs):
    vals = SEEDS[("unet", "bce")]
    for metric, off in (("score", 0.0), ("iou", -0.05), ("dice", 0.05)):
        v = [x + off for x in vals]
        expected = f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}"
        assert cell(tables.table(runs, metric), "UNet", "BCE") == expected


def test_original_and_comparison(runs):
    orig = markdown.original_table()
    assert cell(orig, "UNet", "BCE") == "**0.748**" and cell(orig, "UNet2", "Dice") == "0.124"
    cmp = markdown.comparison(runs)
    assert cell(cmp, "UNet2", "Focal") == "0.900 vs 0.604 (+0.296)"
    assert cell(cmp, "UNet", "BCE") == "0.720 vs 0.748 (-0.028)"


def test_run_stats(runs):
    (spiky,) = [r for r in runs if r["name"] == SPIKY]
    s = summary.run_stats(spiky)
    assert s["spikes"] == [(12, pytest.approx(0.4))]
    first = next(e for e, v in enumerate(SMOOTH, 1) if v >= 0.95 * max(SMOOTH))
    smooth = summary.run_stats(runs[0])
    assert smooth["conv_score"] == first and smooth["spikes"] == []
    assert smooth["iou_gap"] == pytest.approx(0.1)


def test_summary_is_data_driven(runs):
    """Expected claims worked by hand from the fixture: every cell shares the best cell's
    per-image pattern (constant paired differences, distinguishable) except CLOSE, whose
    mirrored pattern gives differences -0.01 -/+ 0.1 (interval about -0.01 +/- 0.06: contains 0);
    UNet+BCE's two flat seeds (0.70, 0.74) minus the best is -0.18 - PATTERN, all negative, so
    the exact sign-flip p over 10 images is 2 / 2**10 = 0.002."""
    text = summary.summary(runs)
    assert "13 runs (13 finished)" in text
    assert "- Test course score: highest mean **UNet2+Focal 0.900 [" in text
    assert (
        "of the other 11 cells, 1 is not distinguishable from it (paired 95% interval of the "
        "difference contains 0): UNet2+Correlation; the other 10 are below it." in text
    )
    assert "9 of 9 intervals of the difference exclude 0" in text
    assert "below BCE: UNet+Dice, UNet+Focal, UNet+Correlation." in text
    assert "for 3 of 12 cells our 95% interval of the test course score lies above" in text
    assert "above: UNet2+Dice, UNet2+Focal, UNet2+Correlation only." in text
    assert "UNet+BCE is below it (paired difference -0.180 [" in text and "p 0.002)" in text
    assert "9 of 13 runs end with train IoU more than 0.05 above val IoU" in text
    assert "1 of 13 runs show spikes (1 in all; per run median 0, range 0-1)" in text
    assert "deepest: UNet+Focal s0 epoch 12 (0.40)" in text
    assert "UNet+Focal 1 in 1 runs, none at epochs 150-175 (last at 12)" in text
    assert "Parameters: SegNet 1,000, UNet 2,000, UNet2 3,000" in text
    assert "(paired by net and seed, 3 pairs:" in text and "): not distinguishable." in text
    bullets = [ln for ln in text.splitlines() if ln.startswith("- ")]
    assert max(len(b) for b in bullets) < 350  # about three lines


def test_interval_table_hand_made(runs):
    md = tables.interval_table(runs, "score")
    assert cell(md, "UNet2", "Focal").startswith("**0.900** [")
    assert cell(md, "UNet2", "Correlation").startswith("*0.890* [")  # indistinguishable
    # two flat seeds 0.70 and 0.74: a resample is 0.70 or 0.74 with probability 1/4 > 2.5% each
    assert cell(md, "UNet", "BCE") == "0.720 [0.700, 0.740]"
    vs = tables.versus_table(runs, "score", "best")
    assert cell(vs, "UNet2", "Focal") == "best"
    assert cell(vs, "UNet", "BCE").startswith("-0.180 [") and cell(vs, "UNet", "BCE").endswith(
        ", p 0.002"
    )
    assert cell(vs, "UNet2", "Correlation").endswith(" ≈")


def test_unfinished_and_unknown_loss(tmp_path):
    """Runs without per-image test metrics (older seglib): means only, and no ranking claim."""
    write_run(tmp_path, "unet", "bce", 0, 0.6, images=False)
    write_run(tmp_path, "unet", "tversky", 0, 0.8, images=False)
    write_run(tmp_path, "segnet", "bce", 0, 0.9, finished=False)
    runs = load_runs(tmp_path)
    md = tables.table(runs)
    assert md.splitlines()[0] == "| | BCE | Tversky |"
    assert cell(md, "SegNet", "BCE") == "–" and cell(md, "UNet", "Tversky") == "**0.800**"
    text = summary.summary(runs)
    assert "3 runs (2 finished)" in text
    assert "highest mean UNet+Tversky 0.800; the runs have no per-image test metrics" in text
    assert tables.interval_table(runs) == md
    assert summary.summary([]) == "No runs with a history found."


def test_partial_grid_one_correlation_pair(tmp_path):
    """A grid stopped part-way (as a GPU lease leaves it): SegNet with all four losses, UNet with
    two. One Correlation run has other losses beside it: one pair, too few for the paired test
    (a permutation test needs two), so the stability claim says so instead of failing."""
    for net, losses in (("segnet", LOSSES), ("unet", ["bce", "dice"])):
        for loss in losses:
            write_run(tmp_path, net, loss, 0, score_of(net, loss))
    text = summary.summary(load_runs(tmp_path))
    assert "6 runs (6 finished)" in text
    assert "- Stability: 1 Correlation run(s) with runs of other losses" in text
    assert "too few pairs to compare" in text
    assert "## Summary" in markdown.write_report(tmp_path, tmp_path / "r.md")


def test_refit_runs_are_flagged(tmp_path):
    """A refit (``run --refit``) trained on val: the summary warns that its val numbers are on
    training images and names it, the details table marks its row; a grid without refits gets
    neither."""
    for loss in ("bce", "dice"):
        write_run(tmp_path, "unet", loss, 0, score_of("unet", loss))
    plain = markdown.write_report(tmp_path, tmp_path / "r.md")
    assert "Refits" not in plain and "(refit)" not in plain
    cfg = tmp_path / "unet_dice_s0" / "config.json"
    cfg.write_text(json.dumps(json.loads(cfg.read_text()) | {"refit": True}))
    text = markdown.write_report(tmp_path, tmp_path / "r.md")
    assert "**Refits** (1 of 2 runs: unet_dice_s0) trained on the val images too" in text
    assert "### Best (test set, best-val-IoU checkpoint; refits: see above)" in text
    rows = [line for line in text.splitlines() if line.startswith("| UNet+")]
    assert any(r.startswith("| UNet+Dice s0 (refit) | 20 |") for r in rows)
    assert any(r.startswith("| UNet+BCE s0 | 20 |") for r in rows)


def test_tta_table_hand_made(tmp_path):
    """Two seeds of one cell: means of the plain and TTA numbers; runs without them left out."""
    for seed, (vp, vt, tp, tt) in enumerate([(0.80, 0.82, 0.70, 0.74), (0.84, 0.86, 0.72, 0.78)]):
        write_run(tmp_path, "unet", "bce", seed, tt)
        d = tmp_path / f"unet_bce_s{seed}"
        test = json.loads((d / "test.json").read_text())
        test |= dict(tta=True, plain=dict(iou=0, dice=0, score=tp))
        test["val"] = dict(plain=dict(iou=vp, dice=0, score=0), tta=dict(iou=vt, dice=0, score=0))
        (d / "test.json").write_text(json.dumps(test))
    write_run(tmp_path, "segnet", "bce", 0, 0.5)  # tested without TTA numbers
    md = markdown.tta_table(load_runs(tmp_path))
    assert cell(md, "UNet", "BCE") == "0.820 → 0.840 / 0.710 → 0.760"
    assert cell(md, "SegNet", "BCE") == "–"
    assert "Test-time augmentation" in markdown.write_report(tmp_path, tmp_path / "r.md")


def test_write_report(runs, tmp_path):
    path = tmp_path / "out" / "report.md"
    text = markdown.write_report(runs[0]["dir"].parent, path)
    assert path.read_text(encoding="utf-8") == text
    heads = ("## Test course score", "## Test IoU", "## Test Dice", "ORIGINAL", "## Summary",
             "## Paired comparisons", "### Each loss - BCE within each net")  # fmt: skip
    assert all(h in text for h in heads)
    assert "Test-time augmentation" not in text  # these runs carry no plain/TTA numbers
    (row,) = [ln for ln in text.splitlines() if ln.startswith("| UNet+Focal s0 |")]
    assert "| 1 (12: 0.40) |" in row


def test_update_readme_replaces_only_the_marked_section(tmp_path):
    start, end = markdown._markers("results")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n{start}\nold numbers\n{end}\n\n## After\ntext\n")
    markdown.update_readme(readme, "# Results\n\n| a |\n## Sub\nline")
    assert readme.read_text() == (
        f"# Title\n\nintro\n{start}\n## Results\n\n| a |\n### Sub\nline\n{end}\n\n## After\ntext\n"
    )
    with pytest.raises(ValueError, match="no ablation markers"):
        markdown.update_readme(readme, "x", section="ablation")


def test_report_is_byte_stable(runs, tmp_path):
    """Same results, same bytes: the bootstrap and permutation generators are seeded."""
    from seglib.report import stats

    out = runs[0]["dir"].parent
    markdown.write_report(out, tmp_path / "a.md")
    stats._interval.cache_clear()
    stats._p_value.cache_clear()
    markdown.write_report(out, tmp_path / "b.md")
    assert (tmp_path / "a.md").read_bytes() == (tmp_path / "b.md").read_bytes()


def test_cells_that_did_not_learn_are_marked_and_named(tmp_path):
    """A cell with test IoU 0 on every image is marked in the tables and named in a note below;
    a weak cell that learnt something (mean IoU 0.15) is not."""
    write_run(tmp_path, "unet", "bce", 0, 0.8)
    write_run(tmp_path, "unet", "focal", 0, 0.2)  # per-image IoU 0.2 +- 0.05 - 0.05: mean 0.15
    write_run(tmp_path, "unet", "dice", 0, 0.8)
    test_file = tmp_path / "unet_dice_s0" / "test.json"
    zero = dict(score=0.0, iou=0.0, dice=0.0, score_per_image=[0.0] * 10, iou_per_image=[0.0] * 10)
    test_file.write_text(json.dumps(json.loads(test_file.read_text()) | zero))
    runs = load_runs(tmp_path)
    note = (
        "† Did not learn: UNet+Dice (mean test IoU below 0.05: the predictions barely meet the "
        "lesions). Not a ranking of the loss: train longer (--epochs) or at another learning "
        "rate (--lr) before comparing it."
    )
    md = tables.interval_table(runs, "iou")
    assert cell(md, "UNet", "Dice") == "0.000 [0.000, 0.000] †"
    assert "†" not in cell(md, "UNet", "Focal") and "†" not in cell(md, "UNet", "BCE")
    assert md.splitlines()[-1] == note
    dice = tables.table(runs, "dice")
    assert cell(dice, "UNet", "Dice") == "0.000 †" and dice.splitlines()[-1] == note
    assert "Did not learn" not in tables.table(runs[:1], "iou")  # BCE alone: no note


def test_runs_not_on_ph2_are_not_compared_with_the_original(runs):
    assert any("the original" in line for line in summary.claims(runs))  # PH2 (no name): compared
    for r in runs:
        r["test"]["dataset"] = "synthetic PH2-like data"
    assert markdown.comparison(runs) == (
        "These runs are on synthetic PH2-like data, not PH2: no comparison with the original "
        "report, which was on PH2."
    )
    claims = summary.claims(runs)
    assert claims and not any("original" in line for line in claims)
    head = markdown.headline(runs)
    assert head.startswith("# Results on synthetic PH2-like data\n") and "ORIGINAL" not in head
