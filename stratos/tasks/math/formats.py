"""Turn one record of a standard math data set into a Stratos task row (or a one-line UserError).

GSM8K (Cobbe et al., 2021) JSONL: {"question": ..., "answer": "<steps with <<a*b=c>> calculator
annotations>\\n#### 72"}. The row keeps the raw solution, drops the annotations from the
rationale (they double the token count and the student has no calculator), counts the
non-empty solution lines as steps and re-evaluates every annotation (`calc_ok`: a few GSM8K
annotations are wrong, reports can filter on it). A numeric `answer` with an optional
`solution`/`rationale` text is accepted too (GSM8K derivatives store it that way).

AIME: field names differ between releases (problem/Problem/question, answer/Answer, solution,
id/ID, year/Year, "Problem Number", part), so keys are matched case- and space-insensitively.
The answer must be an integer 0..999 (leading zeros allowed); if only a solution is given, its
`\\boxed{}`/final answer is used. Difficulty is the position in the paper (problems 1-5, 6-10,
11-15 get harder), read from a problem-number field or the id's last number.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from stratos.tasks.math.extract import extract_aime
from stratos.tasks.math.numbers import fmt, safe_eval, to_fraction
from stratos.tasks.base import ANSWER_PREFIX
from stratos.errors import UserError

_CALC = re.compile(r"<<([^<>]*)>>")


def row_id(prefix: str, question: str) -> str:
    """Stable id: hash of the whitespace/case-normalised question (same problem -> same id)."""
    canon = " ".join(question.lower().split())
    return f"{prefix}-{hashlib.sha1(canon.encode()).hexdigest()[:12]}"


def field(rec: dict, *names: str) -> Any:
    """First present, non-empty value among `names`, matching keys case/space/underscore-insensitively."""
    norm = {re.sub(r"[\s_]+", "", str(k).lower()): v for k, v in rec.items()}
    for n in names:
        v = norm.get(re.sub(r"[\s_]+", "", n.lower()))
        if v is not None and not (isinstance(v, str) and not v.strip()):
            return v
    return None


def _keys(rec: dict) -> str:
    return ", ".join(sorted(map(str, rec))) or "none"


def _calc_ok(annotation: str) -> bool:
    """Re-evaluate one GSM8K calculator annotation 'expr=result'."""
    if "=" not in annotation:
        return False
    expr, result = annotation.rsplit("=", 1)
    want = to_fraction(result.strip())
    try:
        return want is not None and safe_eval(expr) == want
    except ValueError:
        return False


def gsm8k_row(rec: dict, where: str, source: str = "gsm8k") -> dict:
    """One GSM8K record -> row (id, question, answer, rationale, difficulty, steps, solution, calc_ok)."""
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected a JSON object with 'question' and 'answer', got {type(rec).__name__}")
    question = field(rec, "question", "problem")
    answer = field(rec, "answer")
    solution = field(rec, "solution", "rationale")
    if question is None or answer is None:
        raise UserError(f"{where}: a GSM8K row needs 'question' and 'answer' (found keys: {_keys(rec)})")
    text = str(answer) if "####" in str(answer) else (str(solution) if solution and "####" in str(solution) else None)
    if text is not None:
        body, final = text.rsplit("####", 1)
        value = to_fraction(final.strip().lstrip("$").rstrip("."))
        if value is None:
            raise UserError(f"{where}: the final answer after '####' must be a number, got {final.strip()!r}")
    else:
        value = to_fraction(str(answer).strip().lstrip("$"))
        if value is None:
            raise UserError(f"{where}: GSM8K 'answer' must end with a '#### N' line or be a number, "
                            f"got {str(answer)[:60]!r}")
        body = str(solution or "")
    lines = [ln.strip() for ln in body.strip().split("\n") if ln.strip()]
    annotations = _CALC.findall(body)
    rationale = "\n".join([_CALC.sub("", ln) for ln in lines] + [f"{ANSWER_PREFIX} {fmt(value)}"])
    q = str(question).strip()
    return {
        "id": row_id("gsm8k", q), "question": q, "answer": fmt(value), "rationale": rationale,
        "difficulty": f"steps={len(lines)}", "steps": len(lines), "solution": body.strip(),
        "calc_ok": all(_calc_ok(a) for a in annotations), "synthetic": False, "source": source,
    }


def _position(rec: dict, source_id: str | None) -> int | None:
    n = field(rec, "problem number", "problem_idx", "number", "problem_id", "idx")
    if n is not None and str(n).strip().isdigit():
        return int(str(n).strip())
    if source_id:
        m = re.search(r"(\d+)\D*$", source_id)
        if m and 1 <= int(m.group(1)) <= 15:
            return int(m.group(1))
    return None


def aime_row(rec: dict, where: str, source: str = "aime") -> dict:
    """One AIME record -> row (id, question, answer, rationale, difficulty, source_id, year, synthetic)."""
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected an object with 'problem'/'question' and 'answer', got {type(rec).__name__}")
    question = field(rec, "problem", "question")
    raw = field(rec, "answer")
    solution = field(rec, "solution")
    if question is None or (raw is None and solution is None):
        raise UserError(f"{where}: an AIME row needs 'problem' (or 'question') and 'answer' (or 'solution') "
                        f"(found keys: {_keys(rec)})")
    if raw is not None:
        v = to_fraction(str(raw).strip())
        value = int(v) if v is not None and v.denominator == 1 and 0 <= v <= 999 else extract_aime(str(raw))
        if value is None or not re.search(r"\d", str(raw)):
            raise UserError(f"{where}: AIME answer must be an integer 0-999, got {str(raw)[:40]!r}")
    else:
        value = extract_aime(str(solution))
        if value is None:
            raise UserError(f"{where}: no 'answer' field and no integer 0-999 answer found in 'solution'")
    year = field(rec, "year")
    sid = field(rec, "id")
    if sid is None and year is not None:
        part, num = field(rec, "part"), field(rec, "problem number", "number")
        sid = "-".join(str(x) for x in (year, part, num) if x is not None)
    sid = None if sid is None else str(sid)
    pos = _position(rec, sid)
    bucket = "aime" if pos is None else f"pos={5 * ((pos - 1) // 5) + 1}-{5 * ((pos - 1) // 5) + 5}"
    q = str(question).strip()
    answer_line = f"{ANSWER_PREFIX} {value}"
    rationale = f"{str(solution).strip()}\n{answer_line}" if solution else answer_line
    return {
        "id": row_id("aime", q), "question": q, "answer": str(value), "rationale": rationale,
        "difficulty": bucket, "source_id": sid, "year": None if year is None else str(year),
        "has_solution": bool(solution), "synthetic": False, "source": source,
    }
