"""The worst-images page: one panel per overlay, in rank order, titled with case and IoU."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seglib.figures.worst import worst_page


def test_page_of_the_worst_overlays(tmp_path):
    for rank, name in enumerate(["ISIC_0000003", "ISIC_0000001", "ISIC_0000002"], 1):
        Image.fromarray(np.full((30, 40, 3), 60 * rank, np.uint8)).save(
            tmp_path / f"{rank:02d}_{name}.png"
        )
    iou = {"ISIC_0000001": 0.25, "ISIC_0000002": 0.5, "ISIC_0000003": 0.125}
    out = worst_page(tmp_path, iou, tmp_path / "page" / "worst.png", cols=2)
    page = np.asarray(Image.open(out).convert("L")).astype(int)
    assert page.shape == (620, 600)  # 2 columns x 3 in, 2 rows x 3.1 in, at 100 dpi
    centres = [page[y, x] for y, x in ((155, 150), (155, 450), (465, 150))]  # panels 1, 2, 3
    assert [abs(c - g) <= 3 for c, g in zip(centres, (60, 120, 180))] == [True] * 3  # rank order


def test_no_overlays_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="--worst"):
        worst_page(tmp_path, {}, tmp_path / "w.png")
