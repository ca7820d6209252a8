"""Peak memory and time of KD forward+backward from student hidden states through the LM head.

    python -m stratos.benchmarks.kd_loss                    # V = 32,000 and V = 512, 4,096 tokens, hidden 128
    python -m stratos.benchmarks.kd_loss --vocab 512 --repeats 5

Variants, each in a fresh subprocess so that peak RSS belongs to that variant alone:
  naive       logits = h @ W.T (teacher likewise, no grad), log_softmax, kl_div, backward (KD only)
  chunked     ChunkedDistillLoss(kd_weight=1, report_ce=False), teacher from its hidden states + LM head
  naive_ce    naive KD + cross-entropy, mixed 50/50 (what training runs)
  chunked_ce  ChunkedDistillLoss(kd_weight=0.5): CE fused in the same pass
Peak memory = the process's peak RSS (VmHWM, reset after the inputs are built via
/proc/self/clear_refs) minus its RSS at that point; time = median of `--repeats` runs after one
warm-up. torch uses 2 threads. Ratios are against `naive` (or `naive_ce`) measured in the same run.
"""

from __future__ import annotations

import argparse
import json
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


def worker(variant: str, tokens: int, vocab: int, hidden: int, temperature: float, chunk: int, repeats: int) -> dict:
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
    with_ce = variant.endswith("_ce")
    # KD-only rows skip CE's logging value, like the naive KD-only baseline (report_ce=False)
    chunked = ChunkedDistillLoss(loss="forward_kl", temperature=T, kd_weight=0.5 if with_ce else 1.0,
                                 chunk_size=chunk, report_ce=with_ce)

    def step() -> float:
        h.grad = W.grad = None
        if variant.startswith("naive"):
            s = h @ W.T  # (N, V)
            with torch.no_grad():
                t_lp = F.log_softmax((th @ tw.T) / T, -1)
            kd = F.kl_div(F.log_softmax(s / T, -1), t_lp, reduction="batchmean", log_target=True) * T**2
            loss = 0.5 * F.cross_entropy(s, labels) + 0.5 * kd if with_ce else kd
        else:
            loss = chunked(h, W, labels, teacher_hidden=th, teacher_weight=tw)["loss"]
        loss.backward()
        return float(loss)

    base_kib = _status_kib("VmRSS")
    exact_peak = _reset_peak()
    if not exact_peak:  # fall back: lifetime peak (includes setup) minus current
        base_kib = _status_kib("VmRSS")
    value = step()  # warm-up (thread pools, allocator) counts toward the peak too
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_kib = _status_kib("VmHWM")
    return {"variant": variant, "vocab": vocab, "loss": value, "seconds": statistics.median(times),
            "peak_mib": (peak_kib - base_kib) / 1024, "exact_peak": exact_peak,
            "grad_norm_w": float(W.grad.norm())}


def run_variant(variant: str, args: argparse.Namespace, vocab: int) -> dict:
    cmd = [sys.executable, "-m", "stratos.benchmarks.kd_loss", "--worker", variant, "--vocab", str(vocab),
           "--tokens", str(args.tokens), "--hidden", str(args.hidden), "--temperature", str(args.temperature),
           "--chunk", str(args.chunk), "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, nargs="+", default=[32000, 512])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--chunk", type=int, default=0, help="tokens per chunk; 0 = auto")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.tokens, args.vocab[0], args.hidden, args.temperature,
                                args.chunk, args.repeats)))
        return []
    rows = []
    print(f"KD forward+backward, {args.tokens} tokens, hidden {args.hidden}, T={args.temperature}, 2 threads, "
          f"median of {args.repeats}")
    print(f"{'vocab':>7} {'variant':>11} {'peak MiB':>9} {'seconds':>8} {'mem ratio':>9} {'time ratio':>10} "
          f"{'loss':>10}")
    for vocab in args.vocab:
        by = {}
        for v in args.variants:
            r = by[v] = run_variant(v, args, vocab)
            base = by.get("naive_ce" if v.endswith("_ce") else "naive")
            mem_ratio = f"{r['peak_mib'] / max(base['peak_mib'], 1e-9):9.3f}" if base else f"{'-':>9}"
            time_ratio = f"{r['seconds'] / base['seconds']:10.3f}" if base else f"{'-':>10}"
            print(f"{vocab:>7} {v:>11} {r['peak_mib']:9.1f} {r['seconds']:8.3f} {mem_ratio} {time_ratio} "
                  f"{r['loss']:10.6f}", flush=True)
            rows.append(r)
    return rows


if __name__ == "__main__":
    main()
