"""Device fast paths, chosen automatically.

- CUDA: bf16 autocast (fp32 where bf16 is missing), channels_last, the whole
  uint8 dataset resident on the GPU, cudnn autotuning.
- CPU: fp32 (bf16 autocast measured 5-20x *slower* on CPUs without AVX512-BF16/AMX, e.g. this
  project's AMD EPYC dev machines: see benchmarks/throughput.py) and channels_last.
  ``SEGLIB_CPU_BF16=1`` turns bf16 autocast on for CPUs that have native bf16.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def format(self, t):
        """Model or 4-D tensor in this runtime's memory format."""
        if self.channels_last:
            return t.to(memory_format=torch.channels_last)
        return t

    def resident(self, t: torch.Tensor) -> torch.Tensor:
        """Where the dataset lives: on the GPU for CUDA, pinned-free CPU memory otherwise."""
        return t.to(self.device) if self.device.type == "cuda" else t


def runtime(device: str = "auto") -> Runtime:
    """Pick the device and its fast path. ``device``: "auto", "cpu", "cuda", "cuda:1", ..."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device}: not a device (auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine")
        torch.backends.cudnn.benchmark = True
        bf16 = torch.cuda.is_bf16_supported()
        return Runtime(dev, torch.bfloat16 if bf16 else None, True)
    amp = torch.bfloat16 if os.environ.get("SEGLIB_CPU_BF16") == "1" else None
    return Runtime(dev, amp, True)
