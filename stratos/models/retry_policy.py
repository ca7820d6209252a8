r"""When to retry a failed HTTP request, and how long to wait (stratos/models/openai_teacher.py uses it).

The delay before retry r (r = 0, 1, ...) is

    Retry-After (or retry-after-ms) when the server sent one:  d = RA * (1 + 0.1 U),  U ~ U(0, 1)
    otherwise "equal jitter" exponential back-off:              c = min(cap, base * 2^r),
                                                                d = c / 2 + (c / 2) U

The jitter spreads retries of many threads that failed together (a 429 burst) over time; the Retry-After form
never retries earlier than asked, and a server asking for more than MAX_RETRY_AFTER_S is taken at that.
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Mapping

MAX_RETRY_AFTER_S = 300.0  # a server asking for longer is down for our purposes; max_retries still bounds the wait


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date), else None."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:  # HTTP-date form, e.g. "Wed, 21 Oct 2015 07:28:00 GMT"
        when = email.utils.parsedate_to_datetime(ra).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff_delay(retry: int, *, base_s: float, cap_s: float, retry_after: float | None,
                  rng: random.Random) -> float:
    """Seconds to sleep before retry number `retry` (0-based); formulas in the module docstring."""
    u = rng.random()
    if retry_after is not None:
        ra = min(retry_after, MAX_RETRY_AFTER_S)
        return ra * (1.0 + 0.1 * u)
    c = min(cap_s, base_s * (2.0 ** retry))
    return c / 2.0 + (c / 2.0) * u
