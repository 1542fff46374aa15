"""The bad-input table of docs/reference/bad-inputs.md, data rows, through the CLI as a user meets them:
``python -m seglib run --data BAD`` exits 2 with one ``error:`` line that names the bad file,
and leaves nothing behind: no results folder, no half-extracted archive or temporary file in
the cache. (Checkpoint, predict and run-folder rows: tests/test_checkpoint.py,
tests/test_predict.py, tests/test_faults.py, tests/test_cli.py.)"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from seglib.cli import main

CASE = "PH2 Dataset images/IMD{0:03d}/IMD{0:03d}_{1}/IMD{0:03d}{2}.bmp"


def _tree(tmp: Path, src: Path) -> Path:
    dst = tmp / "data" / "PH2Dataset"
    shutil.copytree(src, dst)
    return dst


def _image(root: Path, i: int) -> Path:
    return root / CASE.format(i, "Dermoscopic_Image", "")


def _mask(root: Path, i: int) -> Path:
    return root / CASE.format(i, "lesion", "_lesion")


def missing_path(tmp, src):
    return tmp / "no-such-ph2", tmp / "no-such-ph2", "no such file or folder"


def no_cases(tmp, src):
    (tmp / "empty" / "notes").mkdir(parents=True)
    return tmp / "empty", tmp / "empty", "no images (expected JPEG/PNG/BMP images and masks"


def no_image(tmp, src):
    root = _tree(tmp, src)
    _image(root, 2).unlink()
    return root, _image(root, 2).parent.parent, "no dermoscopic image"


def no_mask(tmp, src):
    root = _tree(tmp, src)
    _mask(root, 3).unlink()
    return root, _mask(root, 3).parent.parent, "no lesion mask"


def empty_image(tmp, src):
    root = _tree(tmp, src)
    _image(root, 1).write_bytes(b"")
    return root, _image(root, 1), "empty file"


def truncated_image(tmp, src):
    root = _tree(tmp, src)
    path = _image(root, 4)
    path.write_bytes(path.read_bytes()[:3000])
    return root, path, "truncated"


def mask_not_an_image(tmp, src):
    root = _tree(tmp, src)
    _mask(root, 5).write_text("this is not a bitmap")
    return root, _mask(root, 5), "unreadable"


def truncated_archive(tmp, src):
    path = tmp / "ph2.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src, "PH2Dataset")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, path, "archive"


def not_an_archive(tmp, src):
    path = tmp / "PH2Dataset.rar"
    path.write_bytes(os.urandom(2000))
    return path, path, "not a RAR, ZIP or TAR archive"


def _tar(path: Path, members) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, data
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def member_climbing_out(tmp, src):
    path = _tar(tmp / "evil.tar", [("PH2Dataset/ok.txt", b"ok", 0), ("../evil.txt", b"x", 0)])
    return path, path, "refusing to extract member '../evil.txt'"


def symlink_chain_out(tmp, src):
    members = [("a", ".", 1), ("a/b", "..", 1), ("a/b/evil.txt", b"x", 0)]
    path = _tar(tmp / "chain.tar", members)
    return path, path, "refusing to extract member 'a/b'"


AGAIN = "download or copy it again"
UNSAFE = "the archive is unsafe, get the data from its official source"
FILE = "re-download or re-export it, or remove it"
CASE_FOLDER = "restore it from the PH2 archive, or remove the case folder"
REMEDY = {"missing_path": "check the path, or use --data synthetic or --data download",
          "no_cases": "point --data at the folder that holds them", "no_image": CASE_FOLDER,
          "no_mask": CASE_FOLDER, "empty_image": FILE, "truncated_image": FILE,
          "mask_not_an_image": FILE, "truncated_archive": AGAIN, "not_an_archive": AGAIN,
          "member_climbing_out": UNSAFE, "symlink_chain_out": UNSAFE}  # fmt: skip
"""What each error line tells the user to do next (docs/reference/bad-inputs.md)."""

ROWS = [
    missing_path,
    no_cases,
    no_image,
    no_mask,
    empty_image,
    truncated_image,
    mask_not_an_image,
    truncated_archive,
    not_an_archive,
    member_climbing_out,
    symlink_chain_out,
]


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("make", ROWS, ids=[f.__name__ for f in ROWS])
def test_bad_data(make, synth_tree, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEGLIB_CACHE", str(cache))
    data, bad, words = make(tmp_path, synth_tree)
    before = _files(tmp_path)
    out = tmp_path / "out"
    argv = ["run", "--data", str(data), "--size", "32", "--width", "4", "--epochs", "1"]
    argv += ["--nets", "unet", "--losses", "bce", "--out", str(out), "--quiet", "--no-report"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert str(bad) in err[0] and words in err[0], err[0]
    assert REMEDY[make.__name__] in err[0], err[0]
    assert not out.exists()
    left = {p for p in _files(tmp_path) - before if not p.is_dir()}
    assert left == set(), left  # no partial extraction, tensor cache or temporary file
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("case", ["device", "out-under-a-file"])
def test_bad_run_option(case, synth_tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "file").write_text("")
    out = tmp_path / ("file/out" if case == "out-under-a-file" else "out")
    argv = ["run", "--data", str(synth_tree), "--size", "32", "--width", "4", "--epochs", "1"]
    argv += ["--nets", "unet", "--losses", "bce", "--out", str(out), "--quiet", "--no-report"]
    argv += ["--device", "foo"] if case == "device" else []
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    want = "--device foo: not a device" if case == "device" else f"Not a directory: '{out}"
    remedy = "use auto, cpu, cuda or cuda:N" if case == "device" else "check the path and that"
    assert want in err[0] and remedy in err[0], err[0]
    assert not (tmp_path / "out").exists() and (tmp_path / "file").read_text() == ""
