"""The one exception type users see for bad input."""

from __future__ import annotations


class DepletionError(ValueError):
    """Bad input: a config key, value, file or parameter that cannot be used.

    The message names the key (or file) and what is allowed; the CLI prints
    it on one line and exits with status 2.
    """
