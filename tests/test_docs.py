"""The documentation's own links: every relative link in a committed markdown file names a file
of the checkout, and every ``#anchor`` a heading of its target, slugged as GitHub does (lower
case, punctuation dropped, spaces to hyphens)."""

import re
import subprocess

import pytest
from helpers import REPO

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True)
    return [p for p in out.stdout.split() if p] if out.returncode == 0 else []


def slug(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_slug_follows_github():
    assert slug("6. A pretrained encoder") == "6-a-pretrained-encoder"
    assert slug("As the shipped model: not yet") == "as-the-shipped-model-not-yet"
    assert slug("Model card: `weights/best.pt`") == "model-card-weightsbestpt"


@pytest.mark.parametrize("name", markdown_files())
def test_relative_links_resolve(name):
    page = REPO / name
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{name}: link to {target}: no such file"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{name}: link to {target}: no such heading"
