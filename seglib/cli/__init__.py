"""Command line of seglib: ``python -m seglib {run,evaluate,report,predict,score,export,synth,
prepare,robustness,bench} --help``. The parser is :mod:`seglib.cli.options`, what each command
does :mod:`seglib.cli.commands`."""

from __future__ import annotations

import argparse
import sys

from seglib.environ import quiet_openmp

quiet_openmp()  # before anything imports torch: idle OpenMP threads sleep (seglib/environ.py)

from seglib.cli import commands, options  # noqa: E402
from seglib.cli.commands import default_out, run_configs  # noqa: E402
from seglib.cli.options import inference_options  # noqa: E402

__all__ = ["default_out", "inference_options", "main", "parser", "run_configs"]


def parser() -> argparse.ArgumentParser:
    """The command line, each command bound to its ``cmd_<name>`` in :mod:`seglib.cli.commands`."""
    names = [name for name, _, _ in options.COMMANDS]
    handlers = {n: getattr(commands, f"cmd_{n}") for n in names if hasattr(commands, f"cmd_{n}")}
    return options.parser(handlers)


def _system_error(e: BaseException) -> bool:
    """An OSError raised by the system (``[Errno N] ...``: no remedy of its own in the text)."""
    return isinstance(e, OSError) and e.errno is not None and str(e).startswith("[Errno")


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors are one line on stderr (exit 2, or 1 when some files failed)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the benchmark has its own parser (seglib/bench/throughput.py)
        from seglib.bench.throughput import main as bench_main

        return bench_main(argv[1:])
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError, KeyboardInterrupt) as e:  # OSError: names its file
        if isinstance(e, KeyboardInterrupt):
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            return 130
        hint = "; check the path and that you can write there" if _system_error(e) else ""
        print(f"error: {e}{hint}", file=sys.stderr)
        return getattr(e, "exit_code", 2)  # 1: some files failed, the others done
    return 0
