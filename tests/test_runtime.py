"""The per-machine runtime: the precision chosen for each kind of machine
(capabilities mocked, so CPU-only CI covers CUDA), the fp16 gradient scaler's state surviving a
resume exactly, and bf16 determinism where the CPU has native bf16."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from seglib import runtime, store
from seglib.data.ph2 import load_ph2
from seglib.engine import train
from seglib.engine.options import FitOptions
from seglib.environ import threads_per_job

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "kind, precision, facts, want",
    [
        ("cuda", "auto", {"capability": (8, 0)}, "bf16"),  # A100
        ("cuda", "auto", {"capability": (9, 0)}, "bf16"),  # H100
        ("cuda", "auto", {"capability": (7, 5)}, "fp16"),  # T4: bf16 only emulated
        ("cuda", "auto", {"capability": (7, 0)}, "fp16"),  # V100
        ("cuda", "fp32", {"capability": (9, 0)}, "fp32"),
        ("cuda", "bf16", {"capability": (7, 5)}, "bf16"),  # explicit wins
        ("cpu", "auto", {"native_bf16": True}, "bf16"),  # AVX512-BF16 / AMX
        ("cpu", "auto", {"native_bf16": False}, "fp32"),  # e.g. Zen 3: bf16 8-17x slower
        ("cpu", "bf16", {"native_bf16": False}, "bf16"),
        ("cpu", "fp32", {"native_bf16": True}, "fp32"),
    ],
)
def test_choose_precision(kind, precision, facts, want):
    assert runtime.choose_precision(kind, precision, **facts) == want


def test_bad_precisions_are_refused():
    with pytest.raises(ValueError, match="fp16: CUDA only"):
        runtime.choose_precision("cpu", "fp16")
    with pytest.raises(ValueError, match="--precision fp8"):
        runtime.choose_precision("cuda", "fp8", capability=(9, 0))


@pytest.mark.parametrize("avx512_bf16, amx, want", [(1, 0, True), (0, 1, True), (0, 0, False)])
def test_cpu_native_bf16_reads_torch_probe(monkeypatch, avx512_bf16, amx, want):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bool(avx512_bf16))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: bool(amx))
    assert runtime.cpu_native_bf16() is want
    assert runtime.runtime("cpu").precision == ("bf16" if want else "fp32")


@pytest.mark.parametrize("cap, want, scaled", [((7, 5), "fp16", True), ((8, 6), "bf16", False)])
def test_cuda_runtime_from_capability(monkeypatch, cap, want, scaled):
    """``runtime("cuda")`` with the CUDA queries mocked: precision and autocast dtype by
    capability, and a gradient scaler only for fp16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: cap)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # T4 says so too
    rt = runtime.runtime("cuda")
    assert rt.precision == want and rt.device.type == "cuda" and rt.channels_last
    assert rt.amp_dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[want]
    assert (rt.precision == "fp16") is scaled


@pytest.mark.parametrize(
    "jobs, threads, n_cores, want",
    [(1, None, 2, 2), (2, None, 2, 1), (3, None, 2, 1), (2, 3, 2, 3)],
)
def test_threads_per_job(jobs, threads, n_cores, want):
    assert threads_per_job(jobs, threads, n_cores=n_cores) == want


# --- fp16 gradient scaler: its state goes into last.pt -------------------------------------


@pytest.fixture
def tiny(synth_tree):
    data = load_ph2(synth_tree, size=32, progress=False)
    split = (np.array([0, 1, 2, 3]), np.array([4]), np.array([5]))
    cfg = train.RunConfig(net="unet", width=4, depth=2, size=32, epochs=3, batch_size=2)
    return cfg, data, split


@pytest.fixture
def fp16_cpu(monkeypatch):
    """fit's runtime forced to fp16 autocast on CPU with a scaler that grows every step and
    halves on each overflow, so the scale it has reached is state that a resume must restore."""
    cpu = torch.device("cpu")

    class Fp16(runtime.Runtime):
        def scaler(self):
            return torch.amp.GradScaler("cpu", init_scale=2.0**14, growth_interval=1)

    monkeypatch.setattr(train, "runtime", lambda dev="auto", precision="auto": Fp16(cpu, "fp16"))


def test_fp16_scaler_state_resumes_exactly(tiny, fp16_cpu, tmp_path, monkeypatch):
    cfg, data, split = tiny
    cfg = dataclasses.replace(cfg, batch_size=1)  # 4 steps per epoch
    whole = train.fit(
        cfg, data, split, tmp_path / "whole", FitOptions(device="cpu", quiet=True, tta=False)
    )
    ref = store.read_json(tmp_path / "whole" / "history.json")

    real_save = store.save_torch
    saves = []

    def save_then_stop(path, obj):  # a crash right after epoch 1's checkpoint
        real_save(path, obj)
        if path.name == "last.pt":
            saves.append(obj)
            raise KeyboardInterrupt

    monkeypatch.setattr(store, "save_torch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train.fit(
            cfg, data, split, tmp_path / "cut", FitOptions(device="cpu", quiet=True, tta=False)
        )
    scaler_state = saves[0]["scaler"]
    # 4 steps from 2**14: each step doubles the scale or (overflow) halves it
    assert np.log2(scaler_state["scale"]) in {14 + k for k in (-4, -2, 0, 2, 4)}
    monkeypatch.setattr(store, "save_torch", real_save)
    resumed = train.fit(
        cfg, data, split, tmp_path / "cut", FitOptions(device="cpu", quiet=True, tta=False)
    )
    got = store.read_json(tmp_path / "cut" / "history.json")
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in got] == [
        {k: v for k, v in r.items() if k not in drop} for r in ref
    ]
    assert resumed["iou_per_image"] == whole["iou_per_image"]


def test_run_records_its_runtime(tiny, tmp_path):
    cfg, data, split = tiny
    result = train.fit(cfg, data, split, tmp_path, FitOptions(device="cpu", quiet=True, tta=False))
    saved = store.read_json(tmp_path / "config.json")
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else []
    native = "avx512_bf16" in flags or "amx_bf16" in flags  # the CPU's own word, not seglib's
    assert saved["runtime"]["precision"] == ("bf16" if native else "fp32")
    assert saved["runtime"]["threads"] == torch.get_num_threads() == 1
    recorded = {"runtime", "datasets", "data_identity"}  # what the run adds beside its config
    assert {k: v for k, v in saved.items() if k not in recorded} == dataclasses.asdict(cfg)
    assert saved["datasets"] == [{"name": saved["data_identity"]["name"], "n": len(data.names),
                                  "train": len(split[0]), "val": len(split[1]),
                                  "test": len(split[2])}]  # fmt: skip
    assert result["runtime"] == saved["runtime"]
    assert result["train_images_per_s"] > 0


@pytest.mark.skipif(not runtime.cpu_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_fits_are_deterministic(tiny, tmp_path):
    cfg, data, split = tiny
    runs = [
        train.fit(cfg, data, split, tmp_path / k, FitOptions("cpu", "bf16", tta=False, quiet=True))
        for k in "ab"
    ]
    hist = [[r["val_loss"] for r in store.read_json(tmp_path / k / "history.json")] for k in "ab"]
    assert hist[0] == hist[1]
    assert runs[0]["iou_per_image"] == runs[1]["iou_per_image"]
    assert store.read_json(tmp_path / "a" / "config.json")["runtime"]["precision"] == "bf16"


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)]
)
def test_the_runtimes_precision_is_the_computations(precision, dtype):
    """What the runtime says is what runs: a convolution inside the net computes in bf16 under
    a bf16 runtime (training step, evaluation and prediction alike) and in fp32 otherwise, as
    seen by a forward hook, not by the label the runtime records."""
    from seglib import losses, models
    from seglib.engine.train import evaluate, train_step
    from seglib.infer.predict import predict_mask

    rt = runtime.Runtime(torch.device("cpu"), precision, channels_last=False)
    torch.manual_seed(0)
    model = models.build("unet", width=4, depth=2)
    seen = []
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    x, y = torch.rand(2, 3, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_step(rt, model, losses.build("bce"), opt, rt.scaler(), x, y)
    assert seen == [dtype]
    norm = torch.tensor([[0.5] * 3, [0.25] * 3]).view(2, 1, 3, 1, 1)
    images = (torch.rand(3, 3, 16, 16) * 255).to(torch.uint8)
    evaluate(model, losses.build("bce"), rt, images, torch.zeros(3, 1, 16, 16), norm)
    image = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    predict_mask(model, {"size": 16}, norm, image, tta=True, pipeline="plain", rt=rt)
    assert set(seen) == {dtype} and len(seen) >= 3


def test_use_cores_takes_the_free_cores_or_the_threads_asked(monkeypatch):
    from seglib import environ

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(environ, "cores", lambda: 2)
    monkeypatch.setattr(environ.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(environ, "running_tasks", lambda: 1)  # alone: every core
    assert runtime.use_cores().threads == torch.get_num_threads() == 2
    monkeypatch.setattr(environ, "running_tasks", lambda: 2)  # another process runs
    choice = runtime.use_cores()
    assert choice.threads == torch.get_num_threads() == 1
    assert choice.reason == "2 cores, another process is using a core"
    assert runtime.use_cores(2).threads == torch.get_num_threads() == 2  # asked for: wins
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(environ, "running_tasks", lambda: 1)
    assert runtime.use_cores().threads == torch.get_num_threads() == 1


# --- the three CPU kinds this project meets, as facts: (native bf16, AMX tiles) ---------------

CPUS = {
    "AMD EPYC, AVX512-BF16": (True, False),
    "AMD Zen 3, no bf16": (False, False),
    "Intel Xeon, AMX": (True, True),
}


@pytest.mark.parametrize(
    "cpu, precision, candidates",
    [
        ("AMD EPYC, AVX512-BF16", "bf16", [(8, True, 2)]),
        ("AMD Zen 3, no bf16", "fp32", [(8, True, 2)]),
        ("Intel Xeon, AMX", "bf16", [(8, True, 2), (16, True, 2)]),
    ],
)
def test_choices_on_each_cpu_kind(cpu, precision, candidates):
    """On 2 cores: the precision, the inference settings (views per forward, channels-last,
    threads; the chosen one first, the others timed by the bench) and, the same on all three,
    the threads alone, beside another process and under --jobs 2."""
    from seglib.environ import choose_threads

    native, amx = CPUS[cpu]
    assert runtime.choose_precision("cpu", "auto", native_bf16=native) == precision
    got = runtime.infer_choices(native, amx, 2)
    assert [(c.batch, c.channels_last, c.threads) for c in got] == candidates
    assert runtime.choose_inference(native, amx, 2) == runtime.InferChoice(8, True, 2)
    assert [choose_threads(2, busy, jobs).threads for busy, jobs in [(0, 1), (1, 1), (0, 2)]] == [
        2,
        1,
        1,
    ]


@pytest.mark.parametrize("cpu", list(CPUS))
def test_cpu_runtime_of_each_kind(monkeypatch, cpu):
    """``runtime("cpu")`` with torch's probes answering as each CPU kind: its precision and the
    inference settings of :func:`choose_inference` (8 views per forward, channels-last)."""
    native, amx = CPUS[cpu]
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native and not amx)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    rt = runtime.runtime("cpu")
    assert (rt.precision, rt.infer_batch, rt.channels_last) == (
        "bf16" if native else "fp32",
        8,
        True,
    )
    assert runtime.cpu_amx() is amx
