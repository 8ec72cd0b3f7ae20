"""depletion: Monte Carlo analysis of Linux memory-reserve depletion under OOM.

The public API is small: :func:`load_scenario`, :func:`simulate` and the
:class:`Result` they produce. Heavy modules (numba, scipy, matplotlib) are
imported only when a simulation runs.
"""

from __future__ import annotations

from depletion.config import Scenario, load_scenario
from depletion.errors import DepletionError

__version__ = "0.1.0"
__all__ = ["DepletionError", "Result", "Scenario", "load_scenario", "simulate", "__version__"]


def __getattr__(name: str):
    if name in ("simulate", "Result"):
        from depletion import api

        return getattr(api, name)
    raise AttributeError(f"module 'depletion' has no attribute {name!r}")
