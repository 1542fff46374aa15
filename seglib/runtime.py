"""Runtime per machine: device, precision and threads, chosen automatically and printed.

Precision (``--precision auto``, :func:`choose_precision`):

- CUDA: bf16 autocast on compute capability >= 8.0 (Ampere and newer: native bf16); fp16
  autocast with a ``torch.amp.GradScaler`` below it (T4, V100), where bf16 is only emulated
  (``torch.cuda.is_bf16_supported()`` answers true there too, so the capability decides).
- CPU: bf16 autocast where the CPU has native bf16 (AVX512-BF16 or AMX, as torch's CPU feature
  probe reports), fp32 elsewhere: bf16 autocast measured 8-17x *slower* than fp32 on a Zen 3
  without it and 1.3-2x faster on CPUs with it (benchmarks/README.md).

Inference (``predict``, ``score``, ``robustness``, the grid's test phase) runs in the same
precision as training, ``--precision`` overriding as for ``run``; views per forward, memory
format and threads come from :func:`choose_inference` (the same on every CPU today; on AMX a
larger batch is a candidate the bench's predict section times, :func:`infer_choices`).

Threads (:func:`seglib.environ.choose_threads`): OpenMP threads that busy-wait slow other
processes sharing the cores 6-12x, so :func:`~seglib.environ.quiet_openmp` sets
``OMP_WAIT_POLICY=PASSIVE`` in processes seglib owns, before torch starts its thread pool. Sleeping
threads are not enough: more threads than cores collapses bf16 training on an Intel Xeon with AMX
(2 cores, EffUNet at 192 px, batch 8: one process with 2 threads 80 ms/img; two such processes side
by side 255 ms/img each, 3.2x slower, 1.6x worse than sharing the cores ideally; two processes
with 1 thread each 135 ms/img each, the ideal). It is the AMX kernels: with them turned off
(``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``) a bf16 pair with 2 threads each shares the cores
normally (``seglib bench --sections side``: 0.94x of ideal against 2.51x with AMX;
benchmarks/README.md). So the free cores are split: a process asks for
the cores that other runnable processes leave free (the kernel's running count less this
process's own threads, the least of a few readings), ``--jobs N``
gives each job ``cores // N``, and ``--threads`` or ``OMP_NUM_THREADS`` always wins. A process
that started alone keeps its threads when another one starts later: give every process that runs
beside another ``--threads 1`` (docs/reference/usage.md, "Running several things at once").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from seglib.environ import ThreadChoice, cores, machine_threads

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

INFER_BATCH = 8
"""Images per forward pass :func:`seglib.augment.tta.tta_logits` aims at: the views of a small batch go through the
net together. On a 2-core CPU (UNet width 16, fp32, channels-last) 8 images per forward took
0.6x the time per image of one at 288 px and 16 were slower again (caches): 8 covers one
image's 8 views. A batch already this large runs one view per forward, as before."""


AMX_INFER_BATCH = 16
"""A candidate views-per-forward on CPUs with AMX tiles (larger matrix tiles may want larger
batches), not yet chosen by :func:`choose_inference`; ``seglib bench --sections predict
--variants`` times it. ``predict`` and ``score`` forward one image at a time, whose 8 views fill
a batch of 8, so it can only differ where two or more images go through the net together."""


@dataclass(frozen=True)
class InferChoice:
    """How ``predict``/``score`` run the net on a CPU: views per forward, memory format, threads."""

    batch: int
    channels_last: bool
    threads: int


def infer_choices(native_bf16: bool, amx: bool, cores: int) -> list[InferChoice]:
    """The inference settings worth timing on a CPU, the chosen one first (pure function of the
    machine facts: native bf16, AMX tiles, cores). Native bf16 without AMX (e.g. AVX512-BF16 on
    an AMD EPYC) and no bf16 (e.g. Zen 3) run as measured: :data:`INFER_BATCH` views,
    channels-last, every core; AMX adds :data:`AMX_INFER_BATCH` views as a candidate."""
    del native_bf16  # precision is choose_precision's; no setting here depends on it yet
    chosen = InferChoice(INFER_BATCH, True, max(1, cores))
    if amx:
        return [chosen, InferChoice(AMX_INFER_BATCH, True, max(1, cores))]
    return [chosen]


def choose_inference(native_bf16: bool, amx: bool, cores: int) -> InferChoice:
    """The inference settings on a CPU: the first of :func:`infer_choices`."""
    return infer_choices(native_bf16, amx, cores)[0]


def cpu_amx() -> bool:
    """True where the CPU has AMX tiles (Intel Xeon since Sapphire Rapids), per torch's probe."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def cpu_native_bf16() -> bool:
    """True where the CPU has bf16 instructions (AVX512-BF16 or AMX tiles), per torch's probe."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def choose_precision(
    device_type: str,
    precision: str = "auto",
    *,
    native_bf16: bool = False,
    capability: tuple[int, int] | None = None,
) -> str:
    """The precision a run uses: "fp32", "bf16" or "fp16" (pure function of the machine facts).

    Args:
        device_type: "cpu" or "cuda". precision: "auto" or an explicit choice.
        native_bf16: the CPU has native bf16 (:func:`cpu_native_bf16`).
        capability: CUDA compute capability (major, minor).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision}: choose from {', '.join(PRECISIONS)}")
    if device_type == "cuda":
        if precision != "auto":
            return precision
        return "bf16" if capability is not None and capability >= (8, 0) else "fp16"
    if precision == "fp16":
        raise ValueError("--precision fp16: CUDA only (on CPU choose auto, fp32 or bf16)")
    if precision == "auto":
        return "bf16" if native_bf16 else "fp32"
    return precision


@dataclass
class Runtime:
    device: torch.device
    precision: str  # "fp32" | "bf16" | "fp16"
    channels_last: bool = True
    infer_batch: int = INFER_BATCH  # images per forward at inference (1: TTA view by view)

    @property
    def amp_dtype(self):
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"

    def describe(self) -> dict:
        """What a run records and prints: device, precision, threads and CPU capability."""
        info = {
            "device": self.name if self.device.type == "cuda" else "cpu",
            "precision": self.precision,
            "threads": torch.get_num_threads(),
            "cpu": torch.backends.cpu.get_cpu_capability(),
            "cpu_native_bf16": cpu_native_bf16(),
            "torch": torch.__version__,
        }
        if self.device.type == "cuda":
            info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(self.device)))
        return info

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def scaler(self):
        """A gradient scaler: active only for fp16 (its small range underflows gradients)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def format(self, t):
        """Model or 4-D tensor in this runtime's memory format."""
        if self.channels_last:
            return t.to(memory_format=torch.channels_last)
        return t

    def resident(self, t):
        """Where the dataset lives: on the GPU for CUDA, CPU memory otherwise."""
        return t.to(self.device) if self.device.type == "cuda" else t


def use_cores(threads: int | None = None) -> ThreadChoice:
    """Set torch's CPU threads once for this process: ``threads`` (or ``OMP_NUM_THREADS``),
    else the cores that other running processes leave free
    (:func:`seglib.environ.machine_threads`); return the choice."""
    choice = machine_threads(1, threads)
    torch.set_num_threads(choice.threads)
    return choice


def runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """Pick the device and its fast path. ``device``: "auto", "cpu", "cuda", "cuda:1", ...;
    ``precision``: "auto", "fp32", "bf16" or "fp16" (see :func:`choose_precision`)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"--device {device}: not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine")
        torch.backends.cudnn.benchmark = True
        cap = torch.cuda.get_device_capability(dev)
        return Runtime(dev, choose_precision("cuda", precision, capability=cap), True)
    native = cpu_native_bf16()
    infer = choose_inference(native, cpu_amx(), cores())
    prec = choose_precision("cpu", precision, native_bf16=native)
    return Runtime(dev, prec, infer.channels_last, infer.batch)
