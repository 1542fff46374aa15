"""Checkpoints that are safe to open: every load goes through :func:`load_checkpoint`.

``torch.load(..., weights_only=True)`` unpickles only tensors and plain containers (dict, list,
tuple, numbers, strings), so a crafted file cannot run code when opened (a plain ``torch.load``
unpickles arbitrary objects: a file from someone else could run any command). Every failure
becomes one :class:`CheckpointError` line that names the file and says what is wrong.

Two kinds of seglib checkpoint, both plain dicts saved with :func:`save`:

- ``"model"`` (``best.pt``, ``weights/best.pt``): ``model`` (state_dict), ``config`` (RunConfig
  dict), ``norm`` (2,1,3,1,1) and ``epoch``.
- ``"resume"`` (``last.pt``): ``model``, ``opt``, ``sched`` (state_dicts), ``gen`` and
  ``torch_rng`` (RNG states as uint8 tensors), ``history`` (list of dicts), ``best``, ``epoch``.

Both carry ``seglib_format`` (:data:`FORMAT`); files without it are format 1 (seglib before the
key existed, e.g. the first shipped weights).
"""

from __future__ import annotations

import copy
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from seglib import models, store

FORMAT = 1
"""Checkpoint layout version written by this seglib; a file with a higher one is refused."""

KEYS = {
    "model": ("model", "config", "norm"),
    "resume": ("model", "opt", "sched", "gen", "torch_rng", "history", "best", "epoch"),
}


class CheckpointError(ValueError):
    """A file that is not a usable seglib checkpoint; the message names it and says why."""


MODEL_HINT = "use a best.pt written by `seglib run` or `seglib export` (or copy it again)"


def save(path: Path, obj: dict) -> None:
    """Save a checkpoint dict atomically, tagged with :data:`FORMAT`."""
    store.save_torch(path, {**obj, "seglib_format": FORMAT})


def _why(path: Path, e: BaseException) -> str:
    """What is wrong with a file torch.load refused, judged from its first bytes."""
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    if found:  # weights_only refused an object: a pickled class/function, never in a checkpoint
        return (
            f"not a seglib checkpoint: it holds a Python object ({found[1]}) that a checkpoint "
            "never contains, so it was not loaded (made by another program, or unsafe)"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "truncated or damaged checkpoint (empty file)"
    if head == b"PK\x03\x04":  # torch.save writes a zip archive
        if not zipfile.is_zipfile(path):
            return "truncated or damaged checkpoint (incomplete copy or full disk?)"
        return f"damaged checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})"
    if head[:1] == b"\x80":
        return "not a checkpoint (a plain Python pickle, not a file written by torch.save)"
    return "not a checkpoint (not a file written by torch.save)"


def load_checkpoint(path: Path, kind: str = "model", map_location: Any = "cpu") -> dict:
    """Load a seglib checkpoint of ``kind`` ("model" or "resume") with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file. CheckpointError: anything else (not a checkpoint,
            truncated, made by another program, another seglib format, missing entries).
    """
    path, hint = Path(path), f"; {MODEL_HINT}" if kind == "model" else ""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": our message says it all
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for bad bytes; all mean "unusable file"
        raise CheckpointError(f"{path}: {_why(path, e)}{hint}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"{path}: made by another program (a {type(ckpt).__name__}, not a seglib "
            f"checkpoint){hint}"
        )
    fmt = ckpt.get("seglib_format", 1)
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise CheckpointError(
            f"{path}: written by an incompatible seglib (checkpoint format {fmt!r}; this seglib "
            f"reads format {FORMAT}): update seglib"
        )
    missing = [k for k in KEYS[kind] if k not in ckpt]
    if missing:
        other = [k for k, keys in KEYS.items() if k != kind and all(x in ckpt for x in keys)]
        what = f"a {other[0]} checkpoint" if other else "made by another program"
        raise CheckpointError(
            f"{path}: not a seglib {kind} checkpoint ({what}; missing {', '.join(missing)}){hint}"
        )
    return ckpt


def _mismatch(model: torch.nn.Module, state: Any) -> str | None:
    """Why ``state`` does not fit ``model`` (None if it fits), checked before anything is
    copied so a refused state leaves the model untouched."""
    if not isinstance(state, dict):
        return "its weights are not a state dict"
    want = {k: v.shape for k, v in model.state_dict().items()}
    have = {k: getattr(v, "shape", None) for k, v in state.items()}
    if want.keys() != have.keys():
        return f"{len(set(want) ^ set(have))} weight names differ"
    bad = [k for k in want if want[k] != have[k]]
    if bad:
        return f"{bad[0]} has shape {tuple(have[bad[0]])}, expected {tuple(want[bad[0]])}"
    return None


def build_model(ckpt: dict, path: Path) -> torch.nn.Module:
    """The float32 model (eval mode, CPU) of a ``"model"`` checkpoint, with a clear error when
    the config names an unknown net or the weights are of another architecture or width."""
    cfg = ckpt["config"]
    try:
        model = models.build(cfg["net"], width=cfg["width"], depth=cfg["depth"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: its config cannot build a seglib net ({e}); {MODEL_HINT}"
        ) from None
    state = ckpt["model"]
    why = _mismatch(model, state)
    if why:
        raise CheckpointError(
            f"{path}: its weights are not those of a {cfg['net']} of width {cfg['width']} and "
            f"depth {cfg['depth']} as its config says ({why}): another architecture or width; "
            + MODEL_HINT
        )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def init_weights(path: Path, model: torch.nn.Module, cfg) -> torch.Tensor:
    """Copy the weights of the ``"model"`` checkpoint at ``path`` into ``model`` (a fine-tune's
    start) and return its input normalisation. CheckpointError naming the file when it is not
    a model checkpoint, its weights do not fit ``model``, or it was trained on the same data
    with another split (its training images could be this run's val or test images) or as a
    refit (on the val images too) for a run that is not one."""
    ckpt = load_checkpoint(path, "model")
    was = ckpt["config"]
    why = _mismatch(model, ckpt["model"])
    if why:
        raise CheckpointError(
            f"{path}: cannot start a {cfg.net} of width {cfg.width}, depth {cfg.depth} from it "
            f"({why}); it holds a {was.get('net')} of width {was.get('width')}, depth "
            f"{was.get('depth')} (--nets, --width; the depth comes with --preset)"
        )
    same_data = Path(str(was.get("data", ""))).name == Path(str(cfg.data)).name
    split = (was.get("split_seed", 0), was.get("split_fractions"))
    if same_data and split != (cfg.split_seed, cfg.split_fractions):
        raise CheckpointError(
            f"{path}: trained on {cfg.data} with split seed {split[0]} and fractions "
            f"{split[1]}, this run uses {cfg.split_seed} and {cfg.split_fractions}: its "
            "training images may be this run's val or test images"
        )
    if same_data and was.get("refit") and not cfg.refit:
        raise CheckpointError(
            f"{path}: a refit, trained on {cfg.data}'s val images too: this run would choose its "
            "checkpoint on images its start has learnt (fine-tune it with --refit, or start from "
            "a model trained without --refit)"
        )
    if (was_colour := was.get("colour", "none")) != cfg.colour:
        raise CheckpointError(
            f"{path}: trained on inputs with colour correction {was_colour!r}, this run asks for "
            f"{cfg.colour!r}: the weights expect the inputs they learnt from (--colour {was_colour})"
        )
    model.load_state_dict({k: v.float() for k, v in ckpt["model"].items()})
    return ckpt["norm"].float()


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def resume(
    path: Path, model, opt, sched, gen: torch.Generator, scaler=None, swa=None
) -> tuple[list, float, int]:
    """Restore a run from its ``last.pt`` into ``model``/``opt``/``sched``/``gen``, the fp16
    gradient ``scaler`` (when active), the weight average ``swa`` (when given) and torch's RNG;
    return (history, best val IoU, epochs done). No file: (``[]``, -1.0, 0).

    A file that cannot be used (truncated by a full disk, not a checkpoint, another net) is
    moved aside to ``last.pt.bad`` with a warning and the run restarts from scratch: never a
    traceback, and nothing from the bad file is applied."""
    path = Path(path)
    if not path.exists():
        return [], -1.0, 0
    fresh = copy.deepcopy((opt.state_dict(), sched.state_dict()))
    swa_fresh = copy.deepcopy(swa.state_dict()) if swa is not None else None
    try:
        state = load_checkpoint(path, "resume", map_location="cpu")
        why = _mismatch(model, state["model"])
        if why:
            raise CheckpointError(f"{path}: the weights do not fit this run's net ({why})")
        gen_state, rng = state["gen"], state["torch_rng"]
        if not (isinstance(gen_state, torch.Tensor) and isinstance(rng, torch.Tensor)):
            raise CheckpointError(f"{path}: its RNG states are not tensors")
        if not (isinstance(state["history"], list) and isinstance(state["epoch"], int)):
            raise CheckpointError(f"{path}: its history or epoch has the wrong type")
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        if scaler is not None and scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if swa is not None and "swa" in state:
            swa.load_state_dict(state["swa"])
    except (CheckpointError, KeyError, TypeError, ValueError, RuntimeError) as e:
        opt.load_state_dict(fresh[0])
        sched.load_state_dict(fresh[1])
        if swa is not None:
            swa.load_state_dict(swa_fresh)
        bad = path.with_name(path.name + ".bad")
        path.replace(bad)
        msg = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
        _warn(f"{msg}; moved to {bad.name}, restarting this run from scratch")
        return [], -1.0, 0
    model.load_state_dict(state["model"])
    gen.set_state(gen_state)
    torch.set_rng_state(rng)
    return state["history"], state["best"], state["epoch"]
