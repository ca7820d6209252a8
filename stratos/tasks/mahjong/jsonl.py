"""The public "Mahjong Winning Tiles" benchmark format: one JSON object per line,

    {"hand": ["🀇", "🀇", ... 13 Unicode tiles], "winning_tiles": ["🀇", "🀊", ...]}

read and written through fsspec (any URL: local, s3://, memory://, ...). Reading is strict: a
malformed line raises `UserError` naming the file and line, and every answer is checked with the
`mahjong` engine under the configured variant (a benchmark written for riichi rules disagrees with
`basic` on seven-pairs waits, and the message says so). Tiles inside the lists may be written in
any notation the parser knows (Unicode, `1m`), which costs nothing and helps hand-made files.
"""

from __future__ import annotations

import json
from typing import Iterable, Sequence

import fsspec

from stratos.artifacts import atomic_open
from stratos.tasks.mahjong.answer import extract_tiles
from stratos.tasks.mahjong.reference import engine_winning_tiles
from stratos.tasks.mahjong.tiles import NAMES, UNICODE, TileError, parse_tile, parse_tiles, to_counts, to_kinds
from stratos.errors import UserError


def _tile_list(value: object, what: str, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise UserError(f"{where}: '{what}' must be a list of tile strings, got {value!r}"[:300])
    try:
        return [parse_tile(x) for x in value]
    except TileError as e:
        raise UserError(f"{where}: bad tile in '{what}': {e}") from None


def read_benchmark(path: str, variant: str = "riichi", verify: bool = True) -> list[dict]:
    """Rows `{"counts": 34-count hand, "winning_tiles": sorted kinds, "line": n, "extra": the object's other keys}`
    from a JSONL file (`extra` reaches the task's rows, e.g. a `teacher_id` for multi-teacher routing)."""
    try:
        with fsspec.open(path, "r", encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise UserError(f"invalid value for 'task.source': {path!r} (no such file)") from None
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(obj, dict) or "hand" not in obj or "winning_tiles" not in obj:
            raise UserError(f"{where}: expected an object with keys 'hand' and 'winning_tiles'")
        hand = _tile_list(obj["hand"], "hand", where)
        if len(hand) != 13:
            raise UserError(f"{where}: 'hand' must hold 13 tiles, got {len(hand)}")
        counts = to_counts(hand)
        over = [NAMES[k] for k in range(34) if counts[k] > 4]
        if over:
            raise UserError(f"{where}: 'hand' holds more than 4 copies of {', '.join(over)}")
        wins = _tile_list(obj["winning_tiles"], "winning_tiles", where)
        if len(set(wins)) != len(wins):
            raise UserError(f"{where}: 'winning_tiles' lists a tile twice")
        wins = sorted(wins)
        if verify:
            truth = engine_winning_tiles(counts, variant)
            if truth != wins:
                other = "basic" if variant == "riichi" else "riichi"
                hint = f"; it matches task.variant={other}" if engine_winning_tiles(counts, other) == wins else ""
                raise UserError(
                    f"{where}: winning_tiles {' '.join(NAMES[k] for k in wins) or 'none'} disagree with the rules "
                    f"engine ({variant}: {' '.join(NAMES[k] for k in truth) or 'none'}){hint}"
                )
        extra = {k: v for k, v in obj.items() if k not in ("hand", "winning_tiles")}  # e.g. teacher_id (routing)
        rows.append({"counts": counts, "winning_tiles": wins, "line": i, "extra": extra})
    if not rows:
        raise UserError(f"invalid value for 'task.source': {path!r} (no rows)")
    return rows


def benchmark_record(hand: Sequence[int] | str, winning_tiles: Iterable[int | str]) -> dict:
    """One benchmark object from a hand (count vector or any-notation string) and its answer."""
    kinds = parse_tiles(hand) if isinstance(hand, str) else to_kinds(hand)
    wins = sorted(parse_tile(w) if isinstance(w, str) else int(w) for w in winning_tiles)
    return {"hand": [UNICODE[k] for k in sorted(kinds)], "winning_tiles": [UNICODE[k] for k in wins]}


def write_benchmark(rows: Iterable[dict], path: str) -> int:
    """Write task rows (`hand` compact, `winning_tiles` compact names) in the benchmark format."""
    n = 0
    with atomic_open(path, "w") as f:
        for r in rows:
            rec = benchmark_record(r["hand"], r["winning_tiles"])
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def score_rows(rows: Sequence[dict], texts: Sequence[str]) -> dict:
    """Grade model texts against rows (benchmark or task rows): {"accuracy", "n", "unparsed", "by_waits"}.

    A text is right when its extracted answer set equals the row's `winning_tiles` set exactly;
    a text with no readable answer counts as wrong (and in `unparsed`). `by_waits` maps every number
    of winning tiles from 0 to the file's largest ("0", "1", ...) to {"n", "accuracy"} (None when n = 0).
    """
    if len(rows) != len(texts):
        raise ValueError(f"{len(rows)} rows but {len(texts)} texts")
    right = unparsed = 0
    n_by: dict[int, list[int]] = {}
    for r, t in zip(rows, texts):
        truth = frozenset(parse_tile(w) if isinstance(w, str) else int(w) for w in r["winning_tiles"])
        got = extract_tiles(t)
        if got is None:
            unparsed += 1
        elif got == truth:
            right += 1
        cell = n_by.setdefault(len(truth), [0, 0])
        cell[0] += 1
        cell[1] += got == truth
    n = len(rows)
    by_waits = {str(k): {"n": n_by.get(k, [0, 0])[0],
                         "accuracy": n_by[k][1] / n_by[k][0] if k in n_by else None}
                for k in range(max(n_by, default=-1) + 1)}
    return {"accuracy": right / n if n else 0.0, "n": n, "unparsed": unparsed, "by_waits": by_waits}


def by_waits_table(by_waits: dict) -> str:
    """`score_rows`' per-wait figures as a plain-text table (one line per number of winning tiles)."""
    lines = ["waits      n  accuracy"]
    for k, c in by_waits.items():
        acc = "-" if c["accuracy"] is None else f"{c['accuracy']:.4f}"
        lines.append(f"{k:>5} {c['n']:>6}  {acc:>8}")
    return "\n".join(lines)
