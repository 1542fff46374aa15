"""Runs of a grid side by side: a local process pool (``--jobs N``) or Ray tasks (``--executor
ray``), both writing to the same results folder as the sequential grid.

Each run executes :func:`seglib.engine.worker.run_one` in a worker process with ``threads`` intra-op
threads; the worker saves a failing run's traceback in its folder and returns instead of raising,
so the rest of the grid goes on. Progress comes from the runs' own ``history.json`` files (no IPC:
the same display works for both executors). Ctrl-C stops every worker (their last finished epoch
is in ``last.pt``) and re-raises ``KeyboardInterrupt``; a rerun resumes.

``concurrent.futures.ProcessPoolExecutor`` (spawn: workers start with a fresh OpenMP runtime) is
the whole scheduler; Ray (optional) replaces it for more than one machine.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from pathlib import Path

from tqdm.auto import tqdm

from seglib import store
from seglib.engine import worker


class Progress:
    """One display for the grid: runs done / total, and each running run's epoch."""

    def __init__(self, runs: list[tuple[str, int]], quiet: bool):
        self.epochs = dict(runs)
        self.quiet = quiet
        self.bar = tqdm(total=len(runs), desc="grid", unit="run", disable=quiet, leave=True)

    def show(self, out: Path, running: list[str]) -> None:
        parts = []
        for name in running:
            try:
                done = len(store.read_json(out / name / "history.json", []) or [])
            except (OSError, ValueError):  # unreadable: the run itself will report it
                done = 0
            parts.append(f"{name} {done}/{self.epochs[name]}")
        self.bar.set_postfix_str(", ".join(parts), refresh=True)

    def finished(self, result: dict) -> None:
        self.bar.update(1)
        if "failed" in result:
            tqdm.write(f"warning: {result['failed']['message']}")

    def close(self) -> None:
        self.bar.close()


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now."""
    kill = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if kill is not None:
        kill()
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())  # gone after shutdown
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(5)


def run_local(tasks: list[dict], out: Path, jobs: int, threads: int, quiet: bool) -> list[dict]:
    """Run ``tasks`` (keyword arguments of :func:`worker.run_one`) in ``jobs`` processes."""
    progress = Progress([(t["name"], t["cfg"]["epochs"]) for t in tasks], quiet)
    pool = cf.ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=worker.init,
        initargs=(threads,),
    )
    results: dict[str, dict] = {}
    try:
        pending = {pool.submit(worker.run_one, **t): t["name"] for t in tasks}
        while pending:
            done, _ = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                name = pending.pop(fut)
                try:
                    results[name] = fut.result()
                except cf.process.BrokenProcessPool as e:  # a worker died (killed, segfault)
                    results[name] = worker.record_failure(out / name, f"worker process died: {e}")
                    _stop(pool)
                    rest = [t for t in tasks if t["name"] in pending.values()]
                    pending.clear()
                    results.update(
                        {r["name"]: r for r in run_local(rest, out, jobs, threads, quiet)}
                    )
                    break
                progress.finished(results[name])
            running = [n for f, n in pending.items() if f.running()]
            progress.show(out, running)
    except KeyboardInterrupt:
        _stop(pool)
        raise
    finally:
        progress.close()
    pool.shutdown(wait=True)
    return [results[t["name"]] for t in tasks]


def run_ray(tasks: list[dict], out: Path, threads: int, gpus: float, address: str | None, quiet):
    """Run ``tasks`` as Ray tasks, each asking for ``threads`` CPUs (and ``gpus`` of a GPU).

    A cluster needs ``out`` on storage every node sees (each task writes its run folder there)."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "--executor ray needs Ray: pip install 'seglib[ray]' (or 'ray>=2.9')"
        ) from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
    remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(worker.run_one_ray)
    progress = Progress([(t["name"], t["cfg"]["epochs"]) for t in tasks], quiet)
    refs = {remote.remote(threads, t): t["name"] for t in tasks}
    results: dict[str, dict] = {}
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for ref in ready:
                name = refs.pop(ref)
                results[name] = ray.get(ref)
                progress.finished(results[name])
            progress.show(out, list(refs.values()))
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        progress.close()
        if started:
            ray.shutdown()
    return [results[t["name"]] for t in tasks]
