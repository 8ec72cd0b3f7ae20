"""The one exception type users see for bad input."""

from __future__ import annotations


class DepletionError(ValueError):
    """Bad input: a config key, value, file or parameter that cannot be used.

    The message names the key (or file) and what is allowed; the CLI prints
    it on one line and exits with status 2.
    """


def check_whole(name: str, value: object, lo: int, hi: int | None = None, hi_text: str | None = None) -> None:
    """Raise :class:`DepletionError` unless ``value`` is a whole number with ``lo <= value`` (``< hi``).

    Booleans are not whole numbers here; NumPy integers are. The message
    names ``name`` and the allowed range (``hi_text`` spells ``hi``, e.g.
    ``"2**64"``).
    """
    from numbers import Integral

    ok = isinstance(value, Integral) and not isinstance(value, bool) and value >= lo and (hi is None or value < hi)
    if not ok:
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi_text or hi})"
        raise DepletionError(f"{name}: expected a whole number {allowed}, got {value!r}")
