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


def find_user_error(exc: BaseException) -> UserError | None:
    """The UserError behind `exc`, if any: hydra.utils.instantiate wraps errors raised by `_target_`s."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
