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


def check_values(checks) -> None:
    """Raise the first failing check of `checks`, rows of (key, value, ok, allowed), as `bad_value`."""
    for key, value, ok, allowed in checks:
        if not ok:
            raise bad_value(key, value, allowed)


def find_user_error(exc: BaseException) -> UserError | None:
    """The UserError behind `exc`, if any: hydra.utils.instantiate wraps errors raised by `_target_`s."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def describe_config_error(exc: BaseException) -> str:
    """One line for an error Hydra or OmegaConf raised while composing the config (a user mistake).

    Hydra prints these over several lines (override, message, full_key, object type); the CLI
    prints this instead: the key, the value and what is allowed, as for every other bad value.
    """
    import re

    import dataclasses

    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if isinstance(exc, MissingConfigException):
        first = re.sub(r"^In '[^']*': ", "", str(exc).strip().splitlines()[0].rstrip("."))
        options = [o for o in (getattr(exc, "options", None) or []) if not str(o).startswith("base_")]
        return f"{first} (allowed: {', '.join(options)})" if options else first
    if isinstance(exc, OverrideParseException):
        return f"cannot parse a command-line override: {str(exc).strip().splitlines()[0]}"
    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        key, msg = cause.full_key, str(getattr(cause, "msg", "") or cause).strip().splitlines()[0]
        m = re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", msg)
        if m:
            return f"invalid value for '{key}': {m.group(1)!r} (allowed: {m.group(2)})"
        m = re.match(r"Value '(.*?)' (?:of type '[^']*' )?could not be converted to (\w+)", msg)
        if m:
            return f"invalid value for '{key}': {m.group(1)!r} (allowed: {_TYPE_WORDS.get(m.group(2), m.group(2))})"
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
            schema = getattr(cause, "object_type", None)
            keys = [f.name for f in dataclasses.fields(schema) if not f.name.startswith("_")] \
                if dataclasses.is_dataclass(schema) else []
            allowed = f"keys of {schema.__name__}: {', '.join(keys)}" if keys else "the keys of that group"
            return f"unknown key '{key}' (allowed: {allowed})"
        return f"invalid value for '{key}': {msg}"
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return "; ".join(lines[:2]) if lines else type(exc).__name__


_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}
