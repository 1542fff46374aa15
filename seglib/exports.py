"""Sub-packages name their public API without importing it: :func:`lazy` serves each name from
its module on first use (PEP 562 module ``__getattr__``), so ``import seglib.infer`` stays cheap
and a sub-package's ``__init__`` cannot start an import circle."""

from __future__ import annotations

import importlib


def lazy(package: str, names: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` whose public ``names`` map to the submodule
    (relative to ``package``) that defines each."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
