"""depletion: Monte Carlo analysis of Linux memory-reserve depletion under OOM.

The public API is small: :func:`load_scenario`, :func:`simulate` and the
:class:`Result` it produces, :func:`sweep` (``depletion.sweeps.run_sweep``)
and :func:`load_results` with the :class:`SweepResult` they give. Heavy modules (numba, scipy, matplotlib) are
imported only when a simulation runs.
"""

from __future__ import annotations

from depletion.config import Scenario, load_scenario
from depletion.errors import DepletionError

__version__ = "0.1.0"
__all__ = [
    "DepletionError", "Result", "Scenario", "SweepResult", "load_results", "load_scenario", "simulate", "sweep",
    "trace_episodes", "__version__",
]  # fmt: skip


def __getattr__(name: str):
    if name in ("simulate", "Result"):
        from depletion import api

        return getattr(api, name)
    if name == "trace_episodes":
        from depletion.trace import trace_episodes

        return trace_episodes
    if name in ("sweep", "load_results", "SweepResult"):
        from depletion import sweeps

        return {"sweep": sweeps.run_sweep, "load_results": sweeps.load_results, "SweepResult": sweeps.SweepResult}[
            name
        ]
    raise AttributeError(f"module 'depletion' has no attribute {name!r}")
