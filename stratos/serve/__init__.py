"""OpenAI-compatible serving of an exported student (ONNX Runtime or torch).

    python -m stratos.serve --model outputs/<exp>/seed0/export          # CLI (see __main__.py)
    stratos.serve.launch.serve_export(export_manifest, cfg.serve)      # after the pipeline (serve.enabled=true)

Modules: engine (token loop, backends; detokenisation in stratos/models/textstream.py), protocol (request
schemas, errors), handlers (requests -> responses/chunks), app (FastAPI routes, auth, limits), metrics
(Prometheus /metrics), server (uvicorn, graceful shutdown), settings, launch.
"""
