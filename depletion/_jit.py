"""One place for the Numba jit options used by every kernel.

* ``cache=True``: compiled kernels are written next to the sources (or to
  ``NUMBA_CACHE_DIR``) so that a second process starts in well under a
  second instead of recompiling.
* ``nogil=True``: kernels release the GIL, so a caller may run chunks from
  Python threads too.
* ``fastmath=False``: results must be bit-identical on every machine and
  thread count; re-association would break that.
* ``error_model="numpy"``: no Python exception checks on division in the
  hot loop (the kernels never divide by zero on validated input).
* ``boundscheck=False`` is Numba's default and is left alone.

Numba is imported lazily by :func:`njit` so that ``import depletion`` stays
cheap; the kernels import this module only when first used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
}


def njit(func: Callable | None = None, **extra: Any) -> Any:
    """Jit ``func`` with the project's options (plus ``extra``, e.g. ``parallel``)."""
    import numba

    opts = dict(JIT_OPTIONS)
    opts.update(extra)
    if func is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(func)
