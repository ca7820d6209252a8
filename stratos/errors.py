"""User-facing errors.

A `UserError` is a mistake in what the user asked for (a bad value, a missing path, an
infeasible constraint). The CLI prints its message on one line and exits with code 2 —
no traceback. Anything else is a bug in Stratos and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A clear, one-line complaint about the user's input. Exit code 2."""

    exit_code = 2


def bad_value(key: str, value: object, allowed: str) -> UserError:
    """Build the canonical message: which key, which value, what is allowed."""
    return UserError(f"invalid value for '{key}': {value!r} (allowed: {allowed})")
