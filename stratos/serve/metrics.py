"""Prometheus metrics of one server: what a vLLM user's dashboards and alerts look at, named the same way.

    metrics = ServerMetrics(engine.name)         # one CollectorRegistry per app, never the global one
    app.add_middleware(HTTPCounter, metrics=metrics)
    metrics.track_queue(lambda: (gate.active, gate.waiting))
    metrics.finished(arrival, tally, completed=True)
    body, content_type = metrics.render()        # the /metrics route (behind the API key, like /v1/*)

| Stratos                                        | vLLM counterpart                      | kind      |
|------------------------------------------------|---------------------------------------|-----------|
| `stratos_http_requests_total{handler,method,status}` | `http_requests_total` (instrumentator) | counter |
| `stratos_time_to_first_token_seconds`          | `vllm:time_to_first_token_seconds`    | histogram |
| `stratos_e2e_request_latency_seconds`          | `vllm:e2e_request_latency_seconds`    | histogram |
| `stratos_prompt_tokens_total`                  | `vllm:prompt_tokens_total`            | counter   |
| `stratos_generation_tokens_total`              | `vllm:generation_tokens_total`        | counter   |
| `stratos_num_requests_running`                 | `vllm:num_requests_running`           | gauge     |
| `stratos_num_requests_waiting`                 | `vllm:num_requests_waiting`           | gauge     |

The prefix is `stratos_`, not `stratos:`: Prometheus reserves colons in metric names for recording
rules ("exporters should not use them"), so only the suffixes follow vLLM. Engine metrics carry a
`model_name` label as vLLM's do; `status` is the exact HTTP code (401 and 429 are worth telling apart).

Both latencies start when the request reaches its route (its wait for a slot included, as vLLM counts
from arrival). The first token is the first one sampled for the request, streamed or not. Tokens count
every token computed, as the response's `usage` does (handlers.Tally feeds both); latencies are
observed only for requests that ran to their end, not for streams whose client went away.
"""

from __future__ import annotations

import time
from typing import Callable

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
except ImportError as e:  # the serving stack is an extra: say how to get it instead of a traceback
    from stratos.errors import UserError

    raise UserError(f"serving needs the 'serve' extra ({e.name} is missing): pip install 'stratos[serve]'") from None

from stratos.serve.handlers import Tally

# vLLM's buckets (vllm/v1/metrics/loggers.py), so histograms from both servers line up on one dashboard
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)


class ServerMetrics:
    """The metrics of one app, in a registry of its own (two servers in one process never mix counts)."""

    def __init__(self, model_name: str) -> None:
        self.registry = r = CollectorRegistry()
        self.http_requests = Counter("stratos_http_requests", "HTTP requests answered, by route, method and status.",
                                     ["handler", "method", "status"], registry=r)
        model = ["model_name"]
        self.ttft = Histogram("stratos_time_to_first_token_seconds", "Time from a request's arrival to its first "
                              "generated token.", model, buckets=TTFT_BUCKETS, registry=r).labels(model_name)
        self.e2e = Histogram("stratos_e2e_request_latency_seconds", "Time from a request's arrival to its last "
                             "generated token (completed requests).", model, buckets=E2E_BUCKETS,
                             registry=r).labels(model_name)
        self.prompt_tokens = Counter("stratos_prompt_tokens", "Prompt tokens processed (as in each response's "
                                     "usage).", model, registry=r).labels(model_name)
        self.generation_tokens = Counter("stratos_generation_tokens", "Tokens generated (as in each response's "
                                         "usage).", model, registry=r).labels(model_name)
        self.running = Gauge("stratos_num_requests_running", "Requests holding a generation slot.", model,
                             registry=r).labels(model_name)
        self.waiting = Gauge("stratos_num_requests_waiting", "Requests queued for a generation slot.", model,
                             registry=r).labels(model_name)

    def track_queue(self, read: Callable[[], tuple[int, int]]) -> None:
        """Read (running, waiting) from the admission gate at scrape time: no counter to keep in step."""
        self.running.set_function(lambda: read()[0])
        self.waiting.set_function(lambda: read()[1])

    def finished(self, arrival: float, tally: Tally, completed: bool) -> None:
        """Record one generation request once it stops (`arrival`: time.perf_counter() at its route)."""
        self.prompt_tokens.inc(tally.prompt_tokens)
        self.generation_tokens.inc(tally.completion_tokens)
        if tally.first_token_at is not None:
            self.ttft.observe(tally.first_token_at - arrival)
        if completed:
            self.e2e.observe(time.perf_counter() - arrival)

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus text exposition."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class HTTPCounter:
    """Pure ASGI middleware (outermost): count every answered request by route template, method and status.

    Added last, it also sees the 413s BodyLimit answers before routing. Paths that match no route are
    counted under handler "none", so a scanner cannot grow one series per URL it tries. An exception
    that escapes the app becomes Starlette's 500 outside this middleware, so it is counted here as 500.
    """

    def __init__(self, app, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics
        self._paths: set[str] | None = None

    def _handler(self, scope) -> str:
        route = scope.get("route")
        if route is not None and getattr(route, "path", None):
            return route.path
        if self._paths is None:  # the routes are all registered by the first request
            self._paths = {getattr(r, "path", None) for r in getattr(scope.get("app"), "routes", [])} - {None}
        return scope["path"] if scope["path"] in self._paths else "none"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def counted_send(message):
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                self.metrics.http_requests.labels(self._handler(scope), scope["method"],
                                                  str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        except Exception:
            if not started:
                self.metrics.http_requests.labels(self._handler(scope), scope["method"], "500").inc()
            raise
