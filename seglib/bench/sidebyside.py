"""The ``side`` section of ``seglib bench``: does a second compute process slow this machine
more than sharing its cores should?

Two worker processes (``python -m seglib.bench.sidebyside``) each train the same small net on
random data, in each precision worth asking about (the CPU's automatic one, and fp32). First one
of them alone on every core, then both at once, their timed steps started together (a line on
each one's stdin), with three thread settings:

- ``old``: every core each, as two processes started by hand used to run;
- ``new``: what :func:`seglib.environ.choose_threads` gives a process started alone (every
  core) and one started beside it (the free cores, at least one);
- ``split``: the cores split over the two, as ``--jobs 2`` or ``--threads 1`` gives them.

``ratio side by side <precision> <setting>: pair / (2 x alone)`` is the slower process's time
over twice the time alone: 1.0 is ideal sharing; above it the pair interferes (oversubscribed
OpenMP threads: see :mod:`seglib.runtime`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from seglib.environ import choose_threads, cores


def pair_threads(n_cores: int) -> dict[str, tuple[int, int]]:
    """The threads of the two processes of each pair setting on ``n_cores`` (pure)."""
    first = choose_threads(n_cores).threads
    split = choose_threads(n_cores, jobs=2).threads
    return {
        "old": (n_cores, n_cores),
        "new": (first, choose_threads(n_cores, busy=first).threads),
        "split": (split, split),
    }


def pair_ratio(pair_seconds: list[float], alone_seconds: float) -> float:
    """The slower of a pair over twice the time alone (1.0: the cores shared ideally)."""
    return max(pair_seconds) / (2 * alone_seconds)


class Worker:
    """One worker process, driven line by line (``run PRECISION THREADS STEPS``, ``go``)."""

    def __init__(self, a):
        cmd = [sys.executable, "-m", "seglib.bench.sidebyside", a.nets[0], str(a.size)]
        cmd += [str(a.width), str(a.batch_size)]
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str) -> str:
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            raise RuntimeError(
                f"bench side-by-side worker: expected {word!r}, got {line.strip()!r} (its error "
                "is printed above); rerun with --sections side to see it alone"
            )
        return line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send("quit")
        self.proc.wait(30)


def timed(workers: list[Worker], precision: str, threads, steps: int) -> list[float]:
    """Seconds each worker took for ``steps`` training steps, started together."""
    for w, t in zip(workers, threads):
        w.send(f"run {precision} {t} {steps}")
    for w in workers:
        w.expect("ready")
    for w in workers:
        w.send("go")
    return [float(w.expect("done").split()[1]) for w in workers]


def section_side(a, precisions: list[str]) -> None:
    """Alone vs side by side, per precision and pair setting; medians of ``--repeats``."""
    n, steps, per = cores(), a.side_steps, a.side_steps * a.batch_size
    settings = pair_threads(n)
    print(
        f"# side by side: {a.nets[0]} width {a.width}, {a.size} px, batch {a.batch_size}, "
        f"{steps} training steps per process, {n} cores, {', '.join(precisions)}",
        flush=True,
    )
    workers = [Worker(a), Worker(a)]
    try:
        for prec in precisions:
            alone, pairs = [], {k: [] for k in settings}
            for _ in range(a.repeats):
                alone.append(timed(workers[:1], prec, [n], steps)[0])
                for key, threads in settings.items():
                    pairs[key].append(max(timed(workers, prec, threads, steps)))
                    print(f"# side by side {prec}: {key} pair done", flush=True)
            t1 = statistics.median(alone)
            print(f"side {prec} alone ({n} threads): {1000 * t1 / per:.0f} ms/img", flush=True)
            for key, threads in settings.items():
                t2 = statistics.median(pairs[key])
                print(
                    f"side {prec} {key} pair ({threads[0]}+{threads[1]} threads): "
                    f"{1000 * t2 / per:.0f} ms/img each (the slower)"
                )
                print(
                    f"ratio side by side {prec} {key}: pair / (2 x alone) = "
                    f"{pair_ratio([t2], t1):.2f}x",
                    flush=True,
                )
    finally:
        for w in workers:
            w.close()


def serve(net: str, size: int, width: int, batch: int) -> None:
    """The worker: train steps on random data as the driver's lines ask, reporting seconds."""
    import torch

    from seglib import losses, models
    from seglib.engine.train import train_step
    from seglib.runtime import Runtime

    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()
    loss_fn, nets = losses.build("bce"), {}
    while True:
        words = sys.stdin.readline().split()
        if not words or words[0] == "quit":
            return
        precision, threads, steps = words[1], int(words[2]), int(words[3])
        torch.set_num_threads(threads)
        if precision not in nets:
            rt = Runtime(torch.device("cpu"), precision)
            model = rt.format(models.build(net, width=width))
            nets[precision] = (rt, model, torch.optim.Adam(model.parameters()), rt.scaler())
        rt, model, opt, scaler = nets[precision]
        train_step(rt, model, loss_fn, opt, scaler, x, y)  # untimed: kernel set-up
        print("ready", flush=True)
        sys.stdin.readline()  # "go"
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(rt, model, loss_fn, opt, scaler, x, y)
        print(f"done {time.perf_counter() - t0:.6f}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], *map(int, sys.argv[2:5]))
