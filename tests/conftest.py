"""Shared fixtures and the statistical check harness used by many tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depletion.config import load_scenario


def quiet_params(**kw):
    """Parameters of a scenario with every bystander stream off, plus overrides."""
    over = {f"bystanders.{c}.rate_per_ms": 0.0 for c in ("atomic", "high", "memalloc", "kernel")}
    over.update(kw)
    return load_scenario(None, over).params


def assert_proportion_matches(k: int, n: int, p_exact: float, alpha: float = 1e-3) -> None:
    """Two-sided exact binomial test of ``k`` successes in ``n`` against ``p_exact``.

    Used wherever a simulated proportion is compared with an exact answer:
    the test fails with probability ``alpha`` when the simulator is right,
    and the power grows with ``n`` (tolerance derived from ``n``, not fixed).
    """
    from scipy.stats import binomtest

    pv = binomtest(k, n, p_exact).pvalue
    assert pv > alpha, f"{k}/{n} = {k / n:.5f} vs exact {p_exact:.5f} (p-value {pv:.2e})"


def assert_pmf_matches(samples: np.ndarray, pmf: np.ndarray, alpha: float = 1e-3) -> None:
    """Chi-square goodness of fit of integer ``samples`` against an exact ``pmf``.

    Cells with expected count below 5 are pooled into their neighbour so the
    chi-square approximation holds; ``alpha`` is the false-alarm rate.
    """
    from scipy.stats import chisquare

    n = samples.shape[0]
    obs = np.bincount(samples.astype(np.int64), minlength=pmf.shape[0]).astype(float)
    assert obs.shape[0] == pmf.shape[0], "sample outside the support"
    exp = pmf * n
    o2, e2 = [], []
    co = ce = 0.0
    for o, e in zip(obs, exp):
        co += o
        ce += e
        if ce >= 5:
            o2.append(co)
            e2.append(ce)
            co = ce = 0.0
    if ce > 0 and e2:
        o2[-1] += co
        e2[-1] += ce
    if len(e2) < 2:
        return
    e2a = np.array(e2)
    e2a *= sum(o2) / e2a.sum()
    pv = chisquare(o2, e2a).pvalue
    assert pv > alpha, f"chi-square p-value {pv:.2e}: observed {o2} expected {np.round(e2a, 1).tolist()}"


@pytest.fixture(scope="session")
def default_params():
    return load_scenario(None).params


def cli_text(result) -> str:
    """stdout and stderr of a ``CliRunner`` result together, whichever way this Click captures them."""
    out = result.output
    try:
        err = result.stderr
    except ValueError:  # pragma: no cover - stderr already mixed into output
        err = ""
    return out if err in out else out + err


def assert_one_error(result, *names: str) -> None:
    """Exit 2, one ``error:`` line naming each of ``names``, nothing else, no traceback.

    The contract for every kind of bad input, shared by the CLI tests.
    """
    text = cli_text(result)
    assert result.exit_code == 2, f"exit {result.exit_code}: {text!r} {result.exception!r}"
    # an uncaught exception is caught by CliRunner instead of printed: it must not happen
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got {lines!r}"
    assert lines[0].startswith("error: "), lines[0]
    for name in names:
        assert name in lines[0], f"{name!r} not named in {lines[0]!r}"


def wilson_contains(k: int, n: int, p: float, conf: float = 0.999) -> bool:
    from depletion.stats import proportion_interval

    lo, hi = proportion_interval(k, n, conf, "wilson")
    return lo <= p <= hi or math.isclose(p, lo) or math.isclose(p, hi)
