"""Imports that run their module's code on first use, not at import (`importlib.util.LazyLoader`).

Some libraries import packages they need only for features this pipeline never uses: Great Expectations
imports scipy.stats, altair and jsonschema (for expectations and renderers not used here), and scipy.special
lists every attribute of numpy when it starts (its array-API layer copies numpy's namespace), which imports
`numpy.testing` and `numpy.f2py`, ~0.1 s per process. Deferred, each is a module object at once that loads
for real on its first attribute access: any later use gets the real module, unused ones cost nothing.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import sys
from typing import Sequence

# numpy's packages that scipy.special's start-up touches but never uses
NOT_USED_BY_SCIPY = ("numpy.testing", "numpy.f2py")


class _DeferredFinder(importlib.abc.MetaPathFinder):
    """Finds `names` as the other finders do, but loads them lazily: the module object exists at once and
    runs its code on its first attribute access."""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                return spec
        return None


@contextlib.contextmanager
def deferred(names: Sequence[str]):
    """While this is open, the listed modules not yet imported are deferred to their first use."""
    finder = _DeferredFinder({n for n in names if n not in sys.modules})
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


# what `from pipelines.lazy import scipy_special` and the like give
_SCIPY = {"scipy_special": "scipy.special", "scipy_sparse": "scipy.sparse"}


def __getattr__(name: str):
    """`from pipelines.lazy import scipy_special` (or `scipy_sparse`): the scipy module, imported (once) with
    `NOT_USED_BY_SCIPY` deferred. The pipeline's modules import scipy this way, so whichever comes first in
    a process starts scipy without them."""
    if name in _SCIPY:
        with deferred(NOT_USED_BY_SCIPY):
            module = importlib.import_module(_SCIPY[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
