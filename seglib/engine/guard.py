"""What a run folder accepts: the same config (but for labels) on the same data.

A run folder records its config and its data's identity (name and fingerprint,
:mod:`seglib.data.identity`) in ``config.json``; a grid that asks for another config or other
data there is refused before any work is done (``seglib.engine.grid.run_grid``).
"""

from __future__ import annotations

from pathlib import Path

from seglib import store
from seglib.data.identity import identity
from seglib.data.multi import split_of
from seglib.engine.train import RunConfig

# Config keys that name things without changing the run (the data path may move between machines).
LABELS = ("data", "preset")


class ConfigMismatch(ValueError):
    """A run folder holds a run with a different config."""


def check_config(run_dir: Path, cfg: RunConfig, data_identity=None) -> None:
    """Refuse to mix a run folder with a different config, or with other data.

    ``data_identity``: a function that returns the requested data's identity
    (``seglib.data.identity.identity``), called only when the folder recorded one to compare
    with (a folder written before seglib recorded it is accepted).
    """
    saved = store.read_json(run_dir / "config.json")
    if saved is None:
        return
    want, default = cfg.to_dict(), RunConfig().to_dict()  # a key newer than the folder: default
    diff = {
        k: (saved.get(k, default[k]), v)
        for k, v in want.items()
        if k not in LABELS and saved.get(k, default[k]) != v
    }
    if diff:
        what = ", ".join(f"{k}: saved {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        raise ConfigMismatch(
            f"{run_dir} holds a run with another config ({what}); "
            "use another --out or delete that folder"
        )
    if data_identity is not None and saved.get("data_identity"):
        check_data(run_dir, cfg, saved["data_identity"], data_identity())


def check_data(run_dir: Path, cfg: RunConfig, saved: dict, requested: dict) -> None:
    """Refuse data whose identity (name, fingerprint) differs from the one ``run_dir`` holds."""
    if saved == requested:
        return

    def text(d: dict) -> str:
        return f"{d.get('name', '?')} (fingerprint {d.get('fingerprint', '?')})"

    raise ConfigMismatch(
        f"{run_dir} holds a run on other data ({text(saved)}; --data {cfg.data} is "
        f"{text(requested)}); use another --out for this data, or delete that folder"
    )


def split_identity(data, cfg: RunConfig) -> dict:
    """The identity of ``data`` as split for ``cfg`` (what ``fit`` records in config.json)."""
    return identity(data, split_of(data, seed=cfg.split_seed, fractions=cfg.split_fractions))
