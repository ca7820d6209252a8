"""ACME edge customisation (after Dai et al., ICDCS 2025; our own code): cloud -> edge -> device.

  cloud   backbone.py (pretrain locally or load MiniLM/any HF folder) -> train_elastic.py (|grad x w|
          importance, reorder, multi-width/depth distillation: losses.py, elastic.py, arch.py, hf_bert.py)
          -> profile.py (size, FLOPs, latency, energy) -> pareto.py (surrogate, front, choice per device
          class) -> export.py (HF folder + ONNX with parity)                         [cloud.py]
  edge    heads.py (head search under the class's budget), aggregate.py (Wasserstein similarity,
          personalised mixing)                                                         [edge.py]
  device  local head training, uploads of importance + feature summaries only, pruning [device.py]
  glue    exchange.py (fsspec inboxes + byte ledger), loop.py (submitit / Slurm array / inline),
          compare.py (baselines: FedAvg, local, shared, centralised bytes), app.py (`run(cfg, ctx)`)

Run: `python -m stratos.acme [overrides]` (its own root config, conf/acme.yaml; schema AcmeAppConfig).
Evidence: `python -m benchmarks.acme_{transmission,personalization,tradeoff}`.
"""
