"""Where the time of one training step goes: torch.profiler's op table for a seglib net.

Usage: python -m benchmarks.profile_step [--net unet] [--size 128] [--width 8] [--batch-size 8]
       [--threads N] [--channels-last 0|1] [--rows 15]
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from seglib import losses, models


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="unet")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--channels-last", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rows", type=int, default=15)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = models.build(a.net, width=a.width).to(memory_format=fmt)
    x = torch.randn(a.batch_size, 3, a.size, a.size).contiguous(memory_format=fmt)
    y = (torch.rand(a.batch_size, 1, a.size, a.size) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = losses.build("bce")

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
    print(
        f"{a.net}, {a.size} px, width {a.width}, batch {a.batch_size}, "
        f"{torch.get_num_threads()} threads, channels_last={bool(a.channels_last)}"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
