"""The documentation's own links: every relative link in a committed markdown file names a file
of the checkout, and every ``#anchor`` a heading of its target, slugged as GitHub does (lower
case, punctuation dropped, spaces to hyphens)."""

import re
import subprocess
from pathlib import Path

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


# --- the README's commands ---------------------------------------------------------------------

FENCE = re.compile(r"```(?:bash|sh|console)\n(.*?)```", re.S)
RUNS_PATH = re.compile(r"(?<![\w/])runs/[\w<>./-]*[\w>]")


def readme_commands(text: str) -> list[list[str]]:
    """The argv (after ``seglib``) of every ``seglib`` / ``python -m seglib`` command in the
    text's shell blocks; ``&&`` and ``;`` separate commands, ``#`` starts a comment."""
    import shlex

    out = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            for part in re.split(r"&&|;", line):
                if re.match(r"\s*(seglib|python -m seglib)\s", part):
                    words = shlex.split(part, comments=True)
                    out.append(words[1:] if words[0] == "seglib" else words[3:])
    return out


def test_readme_commands_hand_made():
    text = (
        "```bash\npip install x && seglib run --preset cpu  # a note\npython -m seglib synth d\n```"
    )
    assert readme_commands(text) == [["run", "--preset", "cpu"], ["synth", "d"]]
    assert RUNS_PATH.findall("in `runs/smoke/REPORT.md`, `runs/<PRESET>`; myruns/x") == [
        "runs/smoke/REPORT.md",
        "runs/<PRESET>",
    ]


def test_readme_commands_parse_and_agree_on_the_output_path():
    """Every seglib command of the README parses with the real parser; every ``runs/...`` path
    the README mentions lies in a folder one of its ``run`` commands writes (the CLI default
    ``runs/<preset>`` unless ``--out``); the reproduction writes to a new folder and compares
    it with the committed results; the notebook's default is the CLI's."""
    from seglib.cli import default_out, parser

    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = readme_commands(text)
    assert len(commands) >= 5
    outs, compared = set(), []
    for argv in commands:
        if argv[0] == "bench":  # its own parser, which the CLI's main hands over to
            continue
        args = parser().parse_args(argv)  # SystemExit (a failed test) on a wrong option
        if args.cmd == "run":
            outs.add(args.out or default_out(args.preset))
            assert not (args.out or "").startswith("results"), f"run into committed {argv}"
        if args.cmd == "report" and args.compare:
            compared.append((args.results, args.compare))
    assert "runs/smoke" in outs and ("runs/cpu", "results/cpu") in compared
    for path in RUNS_PATH.findall(text):
        if "<" in path:  # the rule itself, e.g. runs/<preset>
            assert path == default_out(path.split("/")[1]), path
        else:
            assert any(path == o or path.startswith(o + "/") for o in outs), path
    notebook = (REPO / "homework.ipynb").read_text(encoding="utf-8")
    assert 'OUT = Path(\\"runs\\") / PRESET if OUT is None' in notebook
    assert str(Path("runs") / "smoke") == default_out("smoke")
