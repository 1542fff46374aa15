"""seglib prepare (seglib/data/resized.py): the small archive loads, at its size, exactly as the
full one does; the command writes the official layout and nothing on a bad source."""

import tarfile

import numpy as np
import torch
from PIL import Image

from seglib.cli import main
from seglib.data import load_ph2
from seglib.data.resized import write_resized


def test_the_resized_archive_loads_as_the_full_size_data(synth_tree, cache, tmp_path):
    small = write_resized(synth_tree, tmp_path / "gpu" / "PH2-32.tar", 32)
    full, resized = load_ph2(synth_tree, size=32), load_ph2(small, size=32)
    assert resized.names == full.names
    assert torch.equal(resized.images, full.images) and torch.equal(resized.masks, full.masks)


def test_prepare_writes_the_official_layout_at_the_size(synth_tree, cache, tmp_path, capsys):
    dest = tmp_path / "PH2-16.tar"
    assert main(["prepare", str(synth_tree), str(dest), "--size", "16"]) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    names = sorted(p.name for p in (synth_tree / "PH2 Dataset images").glob("IMD*"))
    with tarfile.open(dest) as tar:
        files = sorted(m.name for m in tar.getmembers() if m.isfile())
        top = "PH2Dataset/PH2 Dataset images"
        assert files == sorted(
            f"{top}/{n}/{n}{part}" for n in names
            for part in (f"_Dermoscopic_Image/{n}.bmp", f"_lesion/{n}_lesion.bmp")
        )  # fmt: skip
        mask = Image.open(
            tar.extractfile(f"{top}/{names[0]}/{names[0]}_lesion/{names[0]}_lesion.bmp")
        )
        assert mask.size == (16, 16) and set(np.unique(np.asarray(mask))) <= {0, 255}


def test_prepare_on_a_missing_source_says_so_and_writes_nothing(tmp_path, capsys):
    dest = tmp_path / "out.tar"
    assert main(["prepare", str(tmp_path / "nowhere"), str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err
    assert list(tmp_path.iterdir()) == []
