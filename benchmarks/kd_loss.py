"""Peak memory and time of KD forward+backward from student hidden states through the LM head.

    python -m benchmarks.kd_loss                    # V = 32,000 and V = 512, 4,096 tokens, hidden 128
    python -m benchmarks.kd_loss --vocab 512 --rounds 7

Variants:
  naive       logits = h @ W.T (teacher likewise, no grad), log_softmax, kl_div, backward (KD only)
  chunked     ChunkedDistillLoss(kd_weight=1, report_ce=False), teacher from its hidden states + LM head
  naive_ce    naive KD + cross-entropy, mixed 50/50 (what training runs)
  chunked_ce  ChunkedDistillLoss(kd_weight=0.5): CE fused in the same pass

Memory: each variant runs in a fresh subprocess (one warm-up step and one measured step); peak =
the process's peak RSS (VmHWM, reset via /proc/self/clear_refs once the inputs exist) minus its
RSS at that moment. Time: one subprocess per vocabulary runs the variants round-robin for
`--rounds` rounds, so load from other processes hits all variants alike; it reports the minimum
(least disturbed) and the median step time. Ratios are against `naive` (or `naive_ce`) from the
same run, on the minimum. torch uses 2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("naive", "chunked", "naive_ce", "chunked_ce")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _setup(tokens: int, vocab: int, hidden: int, temperature: float, chunk: int):
    """Inputs and one step function per variant (each returns the loss value)."""
    import torch
    import torch.nn.functional as F

    from stratos.distill.losses import ChunkedDistillLoss

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(tokens, hidden, generator=g).requires_grad_()
    W = (torch.randn(vocab, hidden, generator=g) / hidden**0.5).requires_grad_()
    th = torch.randn(tokens, hidden, generator=g)
    tw = torch.randn(vocab, hidden, generator=g) / hidden**0.5
    labels = torch.randint(0, vocab, (tokens,), generator=g)
    T = temperature

    def naive(with_ce: bool):
        def step() -> float:
            h.grad = W.grad = None
            s = h @ W.T  # (N, V)
            with torch.no_grad():
                t_lp = F.log_softmax((th @ tw.T) / T, -1)
            kd = F.kl_div(F.log_softmax(s / T, -1), t_lp, reduction="batchmean", log_target=True) * T**2
            loss = 0.5 * F.cross_entropy(s, labels) + 0.5 * kd if with_ce else kd
            loss.backward()
            return float(loss)
        return step

    def chunked(with_ce: bool):
        # KD-only skips CE's logging value, like the naive KD-only baseline
        fn = ChunkedDistillLoss(loss="forward_kl", temperature=T, kd_weight=0.5 if with_ce else 1.0,
                                chunk_size=chunk, report_ce=with_ce)

        def step() -> float:
            h.grad = W.grad = None
            loss = fn(h, W, labels, teacher_hidden=th, teacher_weight=tw)["loss"]
            loss.backward()
            return float(loss)
        return step

    return {"naive": naive(False), "chunked": chunked(False), "naive_ce": naive(True), "chunked_ce": chunked(True)}


def memory_worker(variant: str, args) -> dict:
    steps = _setup(args.tokens, args.vocab[0], args.hidden, args.temperature, args.chunk)
    base_kib = _status_kib("VmRSS")
    exact = _reset_peak()  # without it VmHWM includes the setup: the figure is then an upper bound
    value = steps[variant]()  # warm-up (thread pools, allocator) counts toward the peak too
    steps[variant]()
    return {"variant": variant, "peak_mib": (_status_kib("VmHWM") - base_kib) / 1024, "loss": value,
            "exact_peak": exact}


def time_worker(variants: list[str], args) -> dict:
    steps = _setup(args.tokens, args.vocab[0], args.hidden, args.temperature, args.chunk)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for v in variants:
        steps[v]()  # warm-up
    for _ in range(args.rounds):
        for v in variants:
            t0 = time.perf_counter()
            steps[v]()
            times[v].append(time.perf_counter() - t0)
    return {v: {"min": min(t), "median": statistics.median(t)} for v, t in times.items()}


def _sub(args, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.kd_loss", "--tokens", str(args.tokens), "--hidden",
           str(args.hidden), "--temperature", str(args.temperature), "--chunk", str(args.chunk), "--rounds",
           str(args.rounds), *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, nargs="+", default=[32000, 512])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--chunk", type=int, default=0, help="tokens per chunk; 0 = auto")
    p.add_argument("--rounds", type=int, default=5, help="timed round-robin rounds")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--memory-worker", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--time-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, args)))
        return []
    if args.time_worker:
        print(json.dumps(time_worker(args.variants, args)))
        return []
    print(f"KD forward+backward: {args.tokens} tokens, hidden {args.hidden}, T={args.temperature}, 2 threads, "
          f"chunk={'auto' if args.chunk == 0 else args.chunk}; time over {args.rounds} round-robin rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'vocab':>6} {'variant':>11} {'peak MiB':>9} {'s (min)':>8} {'s (med)':>8} {'mem ratio':>9} "
          f"{'time ratio':>10} {'loss':>9}")
    rows = []
    for vocab in args.vocab:
        mem = {v: _sub(args, "--vocab", str(vocab), "--memory-worker", v) for v in args.variants}
        tim = _sub(args, "--vocab", str(vocab), "--time-worker", "--variants", *args.variants)
        for v in args.variants:
            r = {"vocab": vocab, **mem[v], "seconds_min": tim[v]["min"], "seconds_median": tim[v]["median"]}
            base_v = "naive_ce" if v.endswith("_ce") else "naive"
            if base_v in mem:
                r["mem_ratio"] = r["peak_mib"] / max(mem[base_v]["peak_mib"], 1e-9)
                r["time_ratio"] = r["seconds_min"] / tim[base_v]["min"]
            rows.append(r)
            fmt = lambda k, w, f: format(r[k], f).rjust(w) if k in r else "-".rjust(w)  # noqa: E731
            print(f"{vocab:>6} {v:>11} {r['peak_mib']:9.1f} {r['seconds_min']:8.3f} {r['seconds_median']:8.3f} "
                  f"{fmt('mem_ratio', 9, '.3f')} {fmt('time_ratio', 10, '.3f')} {r['loss']:9.5f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return rows


if __name__ == "__main__":
    main()
