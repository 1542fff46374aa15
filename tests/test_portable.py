"""Nothing committed names a path of the machine it was made on: text files, the notebook's
outputs, results JSON and the shipped checkpoint's metadata."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MACHINE = re.compile(r"/work/|/root/|/home/[a-z]|\.\./shared|[A-Z]:\\\\Users")
BINARY = (".pt", ".png", ".jpg", ".bmp", ".tar", ".xz", ".gz", ".whl")


def committed() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    names = [n for n in out.stdout.decode().split("\0") if n]
    # the tests build machine-like paths on purpose (temporary folders, the optional archives)
    return [REPO / n for n in names if not n.startswith(("tests/", ".ci/"))]


def test_the_scan_finds_a_machine_path():
    assert MACHINE.search('"data": "../shared/data/PH2Dataset.tar.xz"')
    assert MACHINE.search("/work/main/results") and not MACHINE.search("results/cpu/REPORT.md")


def test_no_committed_text_names_a_machine_path():
    found = []
    for path in committed():
        if path.suffix in BINARY or not path.is_file():
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MACHINE.search(line):
                found.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:80]}")
    assert not found, "\n".join(found[:20])


def test_the_shipped_checkpoint_names_no_machine_path():
    ckpt = torch.load(REPO / "weights" / "best.pt", map_location="cpu", weights_only=True)
    text = repr(ckpt["config"])
    assert not MACHINE.search(text), text
