"""Sub-packages name their public API without importing it: :func:`lazy` serves each name from
its module on first use (PEP 562 module ``__getattr__``), so ``import seglib.infer`` stays cheap
and a sub-package's ``__init__`` cannot start an import circle."""

from __future__ import annotations

import importlib


def lazy(package: str, modules: dict[str, tuple[str, ...]]):
    """``(__all__, __getattr__, __dir__)`` for ``package``: ``modules`` maps each submodule
    (relative to ``package``) to the public names it defines."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(home)

    return sorted(home), __getattr__, __dir__
