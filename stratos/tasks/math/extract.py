"""Final-answer extraction from free model text, robust to how real models write answers.

`extract_answer(text) -> Fraction | None` reads, in this order of trust:

1. terminal markers — an `Answer:` line (Stratos' own format), GSM8K's `#### N`, LaTeX
   `\\boxed{...}` (nested braces allowed); the *last* one wins (a model that corrects itself
   states the corrected answer last);
2. otherwise the last "the answer is N" / "final answer is N" phrase that carries a number;
3. otherwise the last number in the text (lm-eval's "flexible extract").

Before that the text is cleaned: a reasoning model's `<think>…</think>` is dropped (only what
follows the last `</think>` counts), and after the first stated answer anything from a line
starting "Question:" / "Q:" / "Problem:" on is cut (a student that keeps generating a new
exercise after answering must not be graded on that exercise's answer).

Inside a marker's segment the value after the last `=` is taken (`Answer: 3 * 6 = 18` -> 18),
else the segment's first number (`The answer is 18 apples, 3 more than 15` -> 18).

Numbers: thousands separators (1,234), decimals (.5, 2.50), fractions (3/4, \\frac{3}{4}),
mixed numbers (2 1/2), negatives (-5, −5, "negative 5"; a hyphen after a word or digit is not
a sign: "3-4"), currency ($, €, £, ¥, \\$) and percent signs (25% -> 25) are stripped — GSM8K
stores "what percent" answers as the bare number. Values are exact Fractions.

`extract_aime` additionally requires an integer in 0..999 (leading zeros allowed: 042 -> 42).
"""

from __future__ import annotations

import re
from fractions import Fraction

# ---------------------------------------------------------------- numbers in running text
_UNSIGNED = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
# A '-' is a sign only when glued to the number and not after a word/digit/bracket:
# "-5", "= -5", "-$5", "$-5" are negative; "10 - 3", "3-4", "x-5" are not.
_NUMBER = re.compile(
    r"(?P<sign>(?<![\w)\]])-)?(?:(?P<cur>[$€£¥])\s?(?P<sign2>-)?)?"
    r"(?:(?P<whole>\d+)\s+(?P<mnum>\d+)\s*/\s*(?P<mden>\d+)(?![\d/]|[.,]\d)"  # mixed number 2 1/2
    rf"|(?P<num>{_UNSIGNED})(?:\s*/\s*(?P<den>{_UNSIGNED}))?)"
)


def _value(m: re.Match) -> Fraction | None:
    if len(m.group(0)) > 64:  # a runaway digit string from a degenerate generation is not an answer
        return None
    if m["whole"] is not None:
        den = int(m["mden"])
        if den == 0:
            return None
        v = int(m["whole"]) + Fraction(int(m["mnum"]), den)
    else:
        v = Fraction(m["num"].replace(",", ""))
        if m["den"] is not None:
            den = Fraction(m["den"].replace(",", ""))
            if den == 0:
                return None
            v /= den
    return -v if (m["sign"] or m["sign2"]) else v


def numbers(text: str) -> list[Fraction]:
    """All numbers in `text` (already cleaned), left to right."""
    out = []
    for m in _NUMBER.finditer(text):
        v = _value(m)
        if v is not None:
            out.append(v)
    return out


# ---------------------------------------------------------------- LaTeX and typography cleanup
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*?)\s*\}\s*\{\s*([^{}]*?)\s*\}")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")


def clean(text: str) -> str:
    """Normalise LaTeX and typography so numbers read plainly: \\frac{3}{4} -> 3/4, \\$5 -> $5, 1{,}000 -> 1,000."""
    s = text.replace("\u2212", "-").replace("\u00a0", " ").replace("\u202f", " ")
    s = s.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\;", " ").replace("\\ ", " ")
    s = s.replace("\\$", "$").replace("\\%", "%").replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s)
    s = re.sub(r"\\(?:times|cdot)", "*", s)
    s = re.sub(r"\\div", "/", s)
    for _ in range(3):  # \text{\frac{..}} and friends: peel a few levels
        s = _TEXT_CMD.sub(r" \1 ", s)
        s = _FRAC.sub(r"(\1)/(\2)", s)
    s = _FRAC_SHORT.sub(r"\1/\2", s)
    s = re.sub(r"\((-?[\d.,]+)\)/\((-?[\d.,]+)\)", r"\1/\2", s)  # (3)/(4) -> 3/4 once both are plain
    s = re.sub(r"\bnegative\s+(?=[$\d.])", "-", s, flags=re.I)
    return s.replace("**", "")  # markdown bold around "Answer:"


# ---------------------------------------------------------------- markers
_ANSWER_LINE = re.compile(r"(?i)\banswer\s*[:：]")
_HASHES = re.compile(r"####")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_PHRASE = re.compile(r"(?i)\banswer\s+(?:is|=|would\s+be|will\s+be|should\s+be)\s*:?")
_CONTINUATION = re.compile(r"(?im)^\s*(?:question|q|problem)\s*\d*\s*[:.]")


_SEGMENT = 200  # characters after a marker that can hold its answer (bounds the work on degenerate output)


def _brace_ends(text: str) -> dict[int, int]:
    """Position of the matching '}' for every '{' (one pass with a stack: O(len(text)))."""
    ends, stack = {}, []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            ends[stack.pop()] = i
    return ends


def boxed_spans(text: str) -> list[tuple[int, str]]:
    """(position, content) of every \\boxed{...} / \\fbox{...}, matching nested braces.

    An unclosed brace (a generation cut off by max_new_tokens) runs to the end of the text.
    """
    out = []
    ends: dict[int, int] | None = None
    for m in _BOXED.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            ends = _brace_ends(text) if ends is None else ends
            out.append((m.start(), text[i + 1 : min(ends.get(i, len(text)), i + 1 + _SEGMENT)]))
        else:  # \boxed 5
            tok = re.match(r"\s*(\S+)", text[i : i + 64])
            if tok:
                out.append((m.start(), tok.group(1)))
    return out


def _line_end(text: str, i: int) -> str:
    """Rest of the line from i; when that is blank ("Answer:\n18"), the next non-blank line."""
    window = text[i : i + _SEGMENT]
    j = window.find("\n")
    rest = window if j < 0 else window[:j]
    if rest.strip() or j < 0:
        return rest
    nxt = re.search(r"\S[^\n]*", text[i + j : i + j + _SEGMENT])
    return nxt.group(0) if nxt else ""


def _sentence(segment: str) -> str:
    """Cut a phrase's segment at the end of its sentence ('. ' or end), keeping decimals intact."""
    return re.split(r"\.(?:\s|$)", segment, maxsplit=1)[0]


def segment_value(segment: str) -> Fraction | None:
    """Value stated in a marker's segment: after the last '=', else the first number."""
    seg = segment.rsplit("=", 1)[-1] if "=" in segment else segment
    found = numbers(seg)
    return found[0] if found else None


def _terminal_candidates(s: str) -> list[tuple[int, Fraction]]:
    cands = []
    for m in _ANSWER_LINE.finditer(s):
        v = segment_value(_line_end(s, m.end()))
        if v is not None:
            cands.append((m.start(), v))
    for m in _HASHES.finditer(s):
        v = segment_value(_line_end(s, m.end()))
        if v is not None:
            cands.append((m.start(), v))
    for pos, content in boxed_spans(s):
        v = segment_value(clean(content))
        if v is not None:
            cands.append((pos, v))
    return sorted(cands, key=lambda c: c[0])


def _first_answer_pos(s: str) -> int | None:
    """Where the model first states an answer (any marker or "the answer is")."""
    hits = [m.start() for rx in (_ANSWER_LINE, _HASHES, _PHRASE) for m in rx.finditer(s)]
    hits += [pos for pos, _ in boxed_spans(s)]
    return min(hits) if hits else None


def prepare(text: str) -> str:
    """Drop <think> blocks and anything generated after the answer that starts a new exercise."""
    s = text
    if "</think>" in s:
        s = s.rsplit("</think>", 1)[1]
    s = clean(s)
    first = _first_answer_pos(s)
    if first is not None:
        m = _CONTINUATION.search(s, first)
        if m:
            s = s[: m.start()]
    return s


def extract_answer(text: str | None) -> Fraction | None:
    """The final numeric answer in free model text, exactly; None when the text states no number."""
    if not text:
        return None
    s = prepare(text)
    cands = _terminal_candidates(s)
    if cands:
        return cands[-1][1]
    for m in reversed(list(_PHRASE.finditer(s))):
        v = segment_value(_sentence(_line_end(s, m.end())))
        if v is not None:
            return v
    found = numbers(s)
    return found[-1] if found else None


def extract_aime(text: str | None) -> int | None:
    """AIME answer: the extracted value if it is an integer in 0..999, else None (invalid answer)."""
    v = extract_answer(text)
    if v is None or v.denominator != 1 or not 0 <= v <= 999:
        return None
    return int(v)
