"""Score a trained or exported model on any "Mahjong Winning Tiles" JSONL file and print accuracy.

    python -m stratos.evaluate.score_file --model outputs/mahjong/<exp>/seed0/distill/model \
        --file bench.jsonl [--variant basic|riichi] [--notation spaced] [--out predictions.jsonl] \
        [--samples 8 --temperature 0.7 --seed 0]

The file holds lines {"hand": [13 Unicode tiles], "winning_tiles": [Unicode tiles]} (any fsspec URL).
Answers are checked with the rules engine under --variant first (a riichi file disagrees with basic
rules on seven-pairs waits; --no-verify skips that). Each hand is asked exactly as in training, the
model answers greedily (or, with --samples k > 1, by the majority of k sampled answers: stratos/evaluate/vote.py),
and an answer is right only when its tile set equals the file's set.
Prints one JSON line (accuracy, n, unparsed, by_waits), the accuracy, then the count and accuracy per
number of winning tiles, 0 up to the file's largest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from stratos.errors import UserError, check_values


def score(model_dir: str, file: str, variant: str, notation: str, batch_size: int, max_new_tokens: int,
          verify: bool, out: str | None, samples: int = 1, temperature: float = 0.7, seed: int = 0) -> dict:
    from stratos import artifacts
    from stratos.tasks.mahjong.jsonl import read_benchmark, score_rows
    from stratos.tasks.mahjong.task import MahjongTask
    from stratos.evaluate.stage import answer, load_model
    from stratos.evaluate.vote import sampling_checks

    check_values(sampling_checks(samples, temperature, "--samples", "--temperature"))
    if not os.path.isdir(model_dir):
        raise UserError(f"invalid value for '--model': {model_dir!r} (allowed: a directory with a saved HF model)")
    rows = read_benchmark(file, variant=variant, verify=verify)
    task = MahjongTask(name="mahjong", variant=variant, notation=notation)
    questions = [task.question(r["counts"]) for r in rows]
    model, tok = load_model(model_dir)
    texts, votes = answer(task, model, tok, questions, max_new_tokens or task.max_new_tokens, batch_size, samples,
                          temperature, seed)
    result = {"file": file, "model": model_dir, "samples": samples, **score_rows(rows, texts)}
    if out:
        preds = [{"line": r["line"], "question": q, "output": t} for r, q, t in zip(rows, questions, texts)]
        for p, v in zip(preds, votes or []):
            p.update(votes=v.count, samples=v.k)
        artifacts.write_jsonl(out, preds)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stratos.evaluate.score_file", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="directory of a saved HF model (e.g. <run>/distill/model)")
    p.add_argument("--file", required=True, help="benchmark JSONL (any fsspec URL)")
    p.add_argument("--variant", default="basic", choices=["basic", "riichi"])
    p.add_argument("--notation", default="spaced", choices=["spaced", "compact", "unicode"],
                   help="how hands are written in the prompt: use the notation the model was trained with")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=0, help="0 = the task's default")
    p.add_argument("--no-verify", action="store_true", help="do not check the file's answers with the engine")
    p.add_argument("--out", default=None, help="write the model's outputs here (JSONL)")
    p.add_argument("--samples", type=int, default=1, help="k > 1: answer by the majority of k sampled answers")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature with --samples > 1")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples (the same seed draws the same ones)")
    a = p.parse_args(argv)
    try:
        result = score(a.model, a.file, a.variant, a.notation, a.batch_size, a.max_new_tokens, not a.no_verify, a.out,
                       a.samples, a.temperature, a.seed)
    except UserError as e:
        print(f"stratos: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    print(f"accuracy {result['accuracy']:.4f} on {result['n']} hands ({result['unparsed']} without a readable answer)")
    from stratos.tasks.mahjong.jsonl import by_waits_table

    print(by_waits_table(result["by_waits"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
