"""`python -m stratos.serve --model DIR [--backend auto|onnx|torch] [--port 8000] ...`

DIR is an export stage directory (export/), its onnx/ (ONNX Runtime) or hf/ (torch), or any HF
checkpoint. The API key, when wanted, comes from an environment variable (--api-key-env, default
STRATOS_API_KEY), never from the command line (which other users can read in `ps`).
"""

from __future__ import annotations

import argparse
import sys

from stratos.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m stratos.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="export dir, ONNX export dir, or HF checkpoint dir")
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 = any free port")
    p.add_argument("--served-model-name", default=None, help="default: the name recorded at export")
    p.add_argument("--api-key-env", default="STRATOS_API_KEY", help="env var with the API key (unset = no auth)")
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--max-concurrency", type=int, default=4)
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--max-body-bytes", type=int, default=1 << 20)
    p.add_argument("--max-logprobs", type=int, default=20, help="most top-k log-probs per token a request may ask")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per request")
    p.add_argument("--graceful-timeout", type=float, default=30.0)
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from stratos.serve.settings import ServeSettings, api_key_from_env, resolve_model_dir

        resolve_model_dir(args.model, args.backend)  # fail fast, before loading torch/transformers
        settings = ServeSettings(host=args.host, port=args.port, api_key=api_key_from_env(args.api_key_env),
                                 max_tokens=args.max_tokens, max_concurrency=args.max_concurrency,
                                 max_queue=args.max_queue, max_body_bytes=args.max_body_bytes,
                                 max_logprobs=args.max_logprobs,
                                 graceful_timeout_s=args.graceful_timeout, log_level=args.log_level).validate()
        from stratos.serve.engine import load_engine
        from stratos.serve.server import serve

        engine = load_engine(args.model, args.backend, threads=args.threads, name=args.served_model_name)
        serve(engine, settings)
    except UserError as e:
        print(f"stratos.serve: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
