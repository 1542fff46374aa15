"""The results archive of ``benchmarks/gpu_check.py``: write it (JSON only), restore from it.

Layout of ``gpu_check.tar.gz`` for a results folder named ``course``::

    course/gpu_check.json            {"calls": [...]}: each call's facts, bench rows, run log
    course/<net>_<loss>_s<seed>/     config.json, history.json, test.json (failed.json)

so ``tar -xzf gpu_check.tar.gz -C results`` gives a results folder that ``seglib report`` reads.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

from seglib import store

SUMMARY = "gpu_check.json"
RUN_FILES = ("config.json", "history.json", "test.json", "failed.json")
_RUN = re.compile(r"[a-z0-9]+_[a-z0-9]+_s\d+")


def write(out: Path, path: Path, call: dict) -> Path:
    """Append ``call`` to ``out/gpu_check.json`` and pack it with every run's JSON files into
    the archive ``path`` (written atomically). Returns ``path``."""
    out, path = Path(out), Path(path)
    summary = store.read_json(out / SUMMARY, {"calls": []})
    summary["calls"].append(call)
    store.write_json(out / SUMMARY, summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tf:
        tf.add(out / SUMMARY, arcname=f"{out.name}/{SUMMARY}")
        for run in sorted(p for p in out.iterdir() if p.is_dir() and _RUN.fullmatch(p.name)):
            for name in RUN_FILES:
                if (run / name).is_file():
                    tf.add(run / name, arcname=f"{out.name}/{run.name}/{name}")
    os.replace(tmp, path)
    return path


def restore(archive: Path, out: Path) -> list[str]:
    """Copy the finished runs (those with a ``test.json``) of an earlier ``archive`` into
    ``out``, and its ``gpu_check.json`` when ``out`` has none; runs already finished in ``out``
    are left alone. Only ``<out name>/<run>/<known file>`` members are read (no paths from the
    archive are followed). Returns the names of the runs restored; none without ``archive``."""
    archive, out = Path(archive), Path(out)
    if not archive.is_file():
        return []
    restored = []
    with tarfile.open(archive, "r:gz") as tf:
        files = {m.name: m for m in tf.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            return tf.extractfile(files[name]).read()

        prefix = f"{out.name}/"
        if not (out / SUMMARY).exists() and prefix + SUMMARY in files:
            json.loads(read(prefix + SUMMARY))  # refuse a damaged summary before writing it
            store.atomic_write(out / SUMMARY, lambda f: f.write(read(prefix + SUMMARY)))
        runs = {n.split("/")[1] for n in files if n.startswith(prefix) and n.count("/") == 2}
        for run in sorted(r for r in runs if _RUN.fullmatch(r)):
            if f"{prefix}{run}/test.json" not in files or (out / run / "test.json").exists():
                continue
            for name in RUN_FILES:  # test.json last: a half-restored run is not "finished"
                member = f"{prefix}{run}/{name}"
                if member in files:
                    data = read(member)
                    json.loads(data)
                    store.atomic_write(out / run / name, lambda f, d=data: f.write(d))
            restored.append(run)
    return restored


def names(archive: Path) -> list[str]:
    """Member names of an archive (for checks)."""
    with tarfile.open(archive, "r:gz") as tf:
        return tf.getnames()


def read_member(archive: Path, name: str):
    """One JSON member of an archive, parsed."""
    with tarfile.open(archive, "r:gz") as tf:
        return json.load(io.BytesIO(tf.extractfile(name).read()))
