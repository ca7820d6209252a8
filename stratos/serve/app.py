"""The OpenAI-compatible HTTP app (FastAPI): /v1/models, /v1/chat/completions, /v1/completions, /health, /metrics.

FastAPI/Starlette give routing, request parsing and SSE-capable streaming responses; uvicorn
(server.py) gives HTTP/1.1, keep-alive and signal handling. What is ours:

  auth         `Authorization: Bearer <key>` when a key is configured (constant-time compare) -> 401
  body limit   Content-Length (or streamed bytes) above `max_body_bytes` -> 413, before parsing
  admission    at most `max_concurrency` requests generate at once and `max_queue` wait; more -> 429
               with Retry-After (a bounded queue keeps latency bounded instead of piling up work)
  errors       every 4xx/5xx is OpenAI's {"error": {...}} body; validation failures are 400, not 422
  streaming    the blocking token loop runs in a worker thread and hands chunks to the event loop
               through a queue; a client that disconnects sets a cancel flag the loop checks per token
  metrics      Prometheus text at /metrics (metrics.py), behind the API key; only /health is open
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import threading
import time
from contextlib import asynccontextmanager

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as e:  # the serving stack is an extra: say how to get it instead of a traceback
    from stratos.errors import UserError

    raise UserError(f"serving needs the 'serve' extra ({e.name} is missing): pip install 'stratos[serve]'") from None

from stratos.serve.engine import Engine
from stratos.serve.handlers import Tally, chat_jobs, completion_jobs, respond, stream_chunks
from stratos.serve.metrics import HTTPCounter, ServerMetrics
from stratos.serve.protocol import APIError, ChatCompletionRequest, CompletionRequest, validation_message
from stratos.serve.settings import ServeSettings

log = logging.getLogger("stratos.serve")


class Admission:
    """At most `limit` holders; at most `queue` waiters; anyone beyond is refused (429)."""

    def __init__(self, limit: int, queue: int) -> None:
        self.sem = asyncio.Semaphore(limit)
        self.queue, self.waiting, self.active = queue, 0, 0

    async def acquire(self) -> None:
        if self.sem.locked():
            if self.waiting >= self.queue:
                raise APIError(429, "the server is at capacity; retry later", type_="server_overloaded",
                               code="rate_limit_exceeded", headers={"Retry-After": "1"})
            self.waiting += 1
            try:
                await self.sem.acquire()
            finally:
                self.waiting -= 1
        else:
            await self.sem.acquire()
        self.active += 1

    def release(self) -> None:
        self.active -= 1
        self.sem.release()


class BodyLimit:
    """Pure ASGI middleware: refuse bodies over `limit` bytes with 413, declared or streamed.

    The body is read here (at most `limit` bytes are ever held) and replayed to the app: a chunked
    upload that crosses the limit is answered 413 before any parsing, and the app never sees it.
    """

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = APIError(413, f"request body exceeds {self.limit} bytes", code="request_too_large")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _send_error(send, too_big)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away mid-upload
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await _send_error(send, too_big)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: disconnect notifications, as usual

        await self.app(scope, replay, send)


async def _send_error(send, e: APIError) -> None:
    body = json.dumps(e.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": e.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error_response(e: APIError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


class GatedStream(StreamingResponse):
    """A streaming response that releases its admission slot however the response ends."""

    def __init__(self, content, on_close, **kw) -> None:
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def create_app(engine: Engine, settings: ServeSettings) -> FastAPI:
    admission: dict[str, Admission] = {}
    metrics = ServerMetrics(engine.name)

    def queue_depth() -> tuple[int, int]:
        gate = admission.get("gate")
        return (gate.active, gate.waiting) if gate else (0, 0)

    metrics.track_queue(queue_depth)

    @asynccontextmanager
    async def lifespan(app):
        admission["gate"] = Admission(settings.max_concurrency, settings.max_queue)  # bound to the server's loop
        yield

    app = FastAPI(title="Stratos OpenAI-compatible server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(HTTPCounter, metrics=metrics)  # added last = outermost: counts BodyLimit's 413s too

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError):
        return _error_response(e)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        msg, param = validation_message(e.errors())
        return _error_response(APIError(400, msg, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return _error_response(APIError(e.status_code, str(e.detail), type_=kind))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        log.exception("internal error on %s", request.url.path)
        return _error_response(APIError(500, f"internal server error: {type(e).__name__}", type_="server_error"))

    def authorize(request: Request) -> None:
        if settings.api_key is None:
            return
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
            raise APIError(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                           code="invalid_api_key")

    @app.get("/health")
    async def health():
        gate = admission["gate"]
        return {"status": "ok", "model": engine.name, "backend": engine.backend, "active": gate.active,
                "waiting": gate.waiting}

    @app.get("/metrics")
    async def prometheus(request: Request):
        authorize(request)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def models(request: Request):
        authorize(request)
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "created": int(time.time()),
                                            "owned_by": "stratos", "max_model_len": engine.context}]}

    async def generate(request: Request, kind: str, req):
        arrival = time.perf_counter()
        authorize(request)
        jobs = (chat_jobs if kind == "chat" else completion_jobs)(engine, req, settings)
        gate = admission["gate"]
        await gate.acquire()
        tally = Tally()
        if not req.stream:
            completed = False
            try:
                body = await asyncio.to_thread(respond, engine, kind, req, jobs, tally=tally)
                completed = True
            finally:
                gate.release()
                metrics.finished(arrival, tally, completed)
            return JSONResponse(body)
        released = threading.Event()

        def release_once() -> None:
            if not released.is_set():
                released.set()
                gate.release()

        finished = functools.partial(metrics.finished, arrival, tally)  # called by the generating thread
        return GatedStream(_sse(engine, kind, req, jobs, tally, finished), release_once, media_type="text/event-stream",
                           headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/chat/completions")
    async def chat(request: Request, req: ChatCompletionRequest):
        return await generate(request, "chat", req)

    @app.post("/v1/completions")
    async def completions(request: Request, req: CompletionRequest):
        return await generate(request, "completion", req)

    return app


async def _sse(engine: Engine, kind: str, req, jobs, tally: Tally, finished):
    """Run the blocking chunk generator in a thread; yield SSE frames as chunks arrive.

    `finished(completed)` is called once by that thread when generation stops: completed is False when
    the client went away (cancel) or generation failed, so the latency histograms hold only whole requests.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    done = object()

    def put(item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server stopped): nobody is listening
            cancel.set()

    def produce() -> None:
        completed = False
        try:
            for chunk in stream_chunks(engine, kind, req, jobs, cancel, tally):
                put(chunk)
            completed = not cancel.is_set()
        except Exception as e:  # surface as an error event: the HTTP status is already sent
            log.exception("generation failed mid-stream")
            put(APIError(500, f"generation failed: {type(e).__name__}", type_="server_error"))
        finally:
            finished(completed)
            put(done)

    threading.Thread(target=produce, name="stratos-gen", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is done:
                break
            if isinstance(item, APIError):
                yield f"data: {json.dumps(item.body())}\n\n"
                continue
            yield f"data: {json.dumps(item, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()  # client gone or response finished: the worker stops at its next token
