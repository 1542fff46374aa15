"""scripts/ph2_resized.py: the small archive loads, at its size, exactly as the full one does."""

import torch

from scripts.ph2_resized import write_resized
from seglib.data import load_ph2


def test_the_resized_archive_loads_as_the_full_size_data(synth_tree, cache, tmp_path):
    small = write_resized(synth_tree, tmp_path / "gpu" / "PH2-32.tar", 32)
    full, resized = load_ph2(synth_tree, size=32), load_ph2(small, size=32)
    assert resized.names == full.names
    assert torch.equal(resized.images, full.images) and torch.equal(resized.masks, full.masks)
