"""The HTTP side: Starlette routes over the models of a :class:`~.models.ModelManager`.

Routes: POST /v1/completions, POST /v1/chat/completions (JSON or SSE
streaming), GET /v1/models, GET /health, GET /metrics, POST /tokenize,
POST /detokenize (llama.cpp server's shapes). Every error is answered in
OpenAI's JSON error shape (schemas.APIError) and the server goes on serving.

The models load on a background thread when the app starts, so /health can
answer 503 ("loading") at once and 200 once every model can be served.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Optional

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import BitNetError
from .._sampling import Sampling
from .config import ServerConfig
from .engine import Engine, Finished, QueueFull, Request, Retired, TokenLogprob
from .logprobs import format_logprobs
from .metrics import CONTENT_TYPE, ServerMetrics
from .models import ModelManager, NotReady, Served, UnknownModel
from .tracing import RequestSpan, Tracer
from .schemas import APIError, ChatRequest, CompletionRequest, GenerationParams, bad, parse_chat, parse_completion
from .schemas import parse_detokenize, parse_tokenize

# Routes that need the API key; /health and /metrics stay open for probes and scrapers.
_PROTECTED = ("/v1/", "/tokenize", "/detokenize")
_ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/tokenize", "/detokenize")
_COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
_POLL_S = 0.5  # how often a waiting handler checks whether its client is still there


class ServerState:
    """The app's models (a ModelManager) and metrics."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        self.models = ModelManager(config, self.metrics)
        self.tracer = Tracer(config.tracer_provider)
        self.created = int(time.time())

    def load(self) -> None:
        self.models.load_all()

    @property
    def engine(self) -> Engine | None:
        """The default model's engine (None while loading)."""
        return self.models.any_engine()

    def pick(self, model: str | None, user: str | None = None, *, count: bool = True) -> Served:
        """The model variant that serves a request: 404 for an unknown name, 503 until loaded."""
        try:
            return self.models.pick(model, user, count=count)
        except UnknownModel:
            names = ", ".join(f"'{n}'" for n in self.models.specs)
            raise APIError(404, f"the model '{model}' does not exist (this server has {names})",
                           param="model", code="model_not_found") from None
        except NotReady:
            error = self.models.load_error
            message = f"the model failed to load: {error}" if error else "the model is loading"
            raise APIError(503, message, type="server_error", code="model_not_ready") from None

    def max_tokens_cap(self, engine: Engine | None = None) -> int:
        return self.config.max_tokens_cap or (engine.n_ctx if engine is not None else 1 << 31)


# ---- middleware --------------------------------------------------------------------


class _Gate:
    """Pure ASGI middleware: counts responses by route and status for
    /metrics, and checks the bearer API key before any route runs."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in _ROUTES else "other"

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.state.metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        key = self.state.config.api_key
        if key and path.startswith(_PROTECTED) and not _key_matches(scope, key):
            err = APIError(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                           code="invalid_api_key")
            await _error_response(err)(scope, receive, counting_send)
            return
        await self.app(scope, receive, counting_send)


def _key_matches(scope: Scope, key: str) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())
    return False


def _error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


# ---- helpers -----------------------------------------------------------------------


async def _read_json(request: HTTPRequest, limit: int) -> Any:
    """The body as JSON; 413 past ``limit`` bytes (checked while reading, so
    a client cannot make the server buffer more), 400 when it is not JSON."""
    too_large = APIError(413, f"the request body is larger than {limit} bytes", code="request_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise bad("the request body is not valid JSON") from None


def _state(request: HTTPRequest) -> ServerState:
    return request.app.state.bitnet


def _sampling(p: GenerationParams) -> Sampling:
    # No seed: a fresh one, as OpenAI (the library's fixed default would make
    # every unseeded request sample the same text).
    seed = p.seed if p.seed is not None else int.from_bytes(os.urandom(8), "little")
    return Sampling(temperature=p.temperature, seed=seed, top_k=p.top_k, top_p=p.top_p, min_p=p.min_p,
                    repeat_penalty=p.repeat_penalty, frequency_penalty=p.frequency_penalty,
                    presence_penalty=p.presence_penalty)


class _Disconnected(Exception):
    pass


async def _next_item(req: Request, http: HTTPRequest) -> str | Finished | TokenLogprob:
    """The request's next text piece or its Finished; cancels it and raises
    _Disconnected when the client has gone away meanwhile."""
    while True:
        try:
            return await asyncio.wait_for(req.queue.get(), timeout=_POLL_S)
        except asyncio.TimeoutError:
            if await http.is_disconnected():
                req.cancel()
                raise _Disconnected from None


def _usage(fin: Finished) -> dict[str, int]:
    return {"prompt_tokens": fin.prompt_tokens, "completion_tokens": fin.completion_tokens,
            "total_tokens": fin.prompt_tokens + fin.completion_tokens}


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


# ---- generation routes ---------------------------------------------------------------


async def completions(request: HTTPRequest) -> Response:
    state = _state(request)
    body = await _read_json(request, state.config.max_body_bytes)
    params = parse_completion(body, state.max_tokens_cap())
    served = state.pick(params.model, params.user)
    engine = served.engine
    if isinstance(params.prompt, str):
        try:
            ids = engine.model.prompt_tokens(params.prompt)
        except (ValueError, BitNetError) as exc:  # empty, or not UTF-8 (a lone surrogate escape)
            raise bad(str(exc), "prompt") from None
    else:
        ids = params.prompt
        if any(not 0 <= t < engine.n_vocab for t in ids):
            raise bad(f"the prompt has a token id out of range [0, {engine.n_vocab})", "prompt")
    return await _generate(request, served, ids, params, chat=False)


async def chat_completions(request: HTTPRequest) -> Response:
    state = _state(request)
    body = await _read_json(request, state.config.max_body_bytes)
    params = parse_chat(body, state.max_tokens_cap())
    served = state.pick(params.model, params.user)
    try:
        ids = served.engine.model.chat_tokens(params.messages)
    except Exception as exc:  # noqa: BLE001 - a template that rejects these messages
        raise bad(f"the chat template failed on these messages: {exc}", "messages") from None
    return await _generate(request, served, ids, params, chat=True)


async def _generate(
    http: HTTPRequest, served: Served, ids: list[int], params: CompletionRequest | ChatRequest, *, chat: bool,
) -> Response:
    state = _state(http)
    engine = served.engine
    room = engine.n_ctx - len(ids)
    if params.max_tokens is not None:
        max_tokens = params.max_tokens
    elif chat:  # chat: until the answer ends or the context is full
        max_tokens = min(state.max_tokens_cap(engine), room)
    else:
        max_tokens = min(_COMPLETIONS_DEFAULT_MAX_TOKENS, state.max_tokens_cap(engine))
    if room <= 0:
        raise bad(f"the prompt ({len(ids)} tokens) does not fit the context ({engine.n_ctx} tokens)",
                  "messages" if chat else "prompt", "context_length_exceeded")
    if len(ids) + max_tokens > engine.n_ctx:
        raise bad(f"the prompt ({len(ids)} tokens) plus max_tokens ({max_tokens}) is more than the context "
                  f"holds ({engine.n_ctx} tokens)", "max_tokens", "context_length_exceeded")
    req = Request(ids, max_tokens, _sampling(params), params.stop, asyncio.get_running_loop(), params.top_logprobs)
    try:
        engine.submit(req)
    except QueueFull:
        raise APIError(429, "the server is busy: every slot is taken and the queue is full; retry later",
                       type="server_error", code="queue_full", headers={"Retry-After": "1"}) from None
    except Retired:  # the file was reloaded between picking this engine and now: rare
        raise APIError(503, "the model is being reloaded; retry", type="server_error", code="model_reloading",
                       headers={"Retry-After": "1"}) from None
    ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    # system_fingerprint names the variant that answered (an A/B test's arm), as the header does.
    meta = {"id": ident, "created": int(time.time()), "model": served.spec.name,
            "system_fingerprint": served.variant.name}
    headers = {"X-Bitnet-Variant": served.variant.name}
    logprobs = _logprob_formatter(engine, chat, params.top_logprobs)
    span = state.tracer.request(model=served.spec.name, variant=served.variant.name, chat=chat,
                                max_tokens=max_tokens, temperature=params.temperature, stream=params.stream)
    if params.stream:
        return StreamingResponse(_stream(http, req, meta, chat, params.include_usage, logprobs, span),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers})
    return await _collect(http, req, meta, chat, headers, logprobs, span)


_Logprobs = Optional[Callable[[list[TokenLogprob], int], Optional[dict[str, Any]]]]


def _logprob_formatter(engine: Engine, chat: bool, n_top: int | None) -> _Logprobs:
    """(items, text offset) -> a choice's ``logprobs`` object; None when the request asked for none."""
    if n_top is None:
        return None

    def logprobs(items: list[TokenLogprob], offset: int) -> dict[str, Any] | None:
        return format_logprobs(items, engine.token_bytes, chat=chat, n_top=n_top, offset=offset) if items else None

    return logprobs


async def _collect(http: HTTPRequest, req: Request, meta: dict[str, Any], chat: bool,
                   headers: dict[str, str], logprobs: _Logprobs, span: RequestSpan) -> Response:
    parts: list[str] = []
    scored: list[TokenLogprob] = []
    finished = False
    try:
        while True:
            item = await _next_item(req, http)
            if isinstance(item, Finished):
                finished = True
                break
            if isinstance(item, TokenLogprob):
                scored.append(item)
            else:
                span.first_token()
                parts.append(item)
    except _Disconnected:
        return Response(status_code=499)  # nobody reads it; nginx's code for "client closed"
    finally:
        if not finished:
            req.cancel()
            span.end("cancelled", len(req.prompt_ids), 0)
    span.end(item.reason, item.prompt_tokens, item.completion_tokens, item.error)
    if item.reason == "error":
        raise APIError(500, item.error or "generation failed", type="server_error")
    text = "".join(parts)
    scores = logprobs(scored, 0) if logprobs else None
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": scores,
                  "finish_reason": item.reason}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": scores, "finish_reason": item.reason}
        obj = "text_completion"
    return JSONResponse({**meta, "object": obj, "choices": [choice], "usage": _usage(item)}, headers=headers)


async def _stream(
    http: HTTPRequest, req: Request, meta: dict[str, Any], chat: bool, include_usage: bool, logprobs: _Logprobs,
    span: RequestSpan,
) -> AsyncIterator[str]:
    """SSE events: ``data: {chunk}`` per text piece (with the logprobs of the
    tokens since the last chunk, when asked for), a last chunk with the
    finish_reason, the usage chunk if asked for, then ``data: [DONE]``.
    However the stream ends early (client gone, send failure, task
    cancelled), ``finally`` cancels the request so the engine frees its slot."""
    obj = "chat.completion.chunk" if chat else "text_completion"

    scored: list[TokenLogprob] = []
    offset = 0  # /v1/completions' text_offset counts from the start of the whole text

    def chunk(text: str | None, finish: str | None) -> dict[str, Any]:
        nonlocal offset
        scores = logprobs(scored, offset) if logprobs else None
        scored.clear()
        if scores is not None and not chat:
            offset = scores["text_offset"][-1] + len(scores["tokens"][-1])
        if chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": scores, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": scores, "finish_reason": finish}
        return {**meta, "object": obj, "choices": [choice]}

    finished = False
    try:
        if chat:
            first = chunk("", None)
            first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            yield _sse(first)
        while True:
            item = await _next_item(req, http)
            if isinstance(item, Finished):
                finished = True
                break
            if isinstance(item, TokenLogprob):
                scored.append(item)
                continue
            span.first_token()
            yield _sse(chunk(item, None))
        span.end(item.reason, item.prompt_tokens, item.completion_tokens, item.error)
        if item.reason == "error":
            yield _sse(APIError(500, item.error or "generation failed", type="server_error").body())
        else:
            yield _sse(chunk(None, item.reason))
            if include_usage:
                yield _sse({**meta, "object": obj, "choices": [], "usage": _usage(item)})
        yield "data: [DONE]\n\n"
    except _Disconnected:
        return
    finally:
        if not finished:
            req.cancel()
            span.end("cancelled", len(req.prompt_ids), 0)


# ---- other routes ----------------------------------------------------------------------


async def models(request: HTTPRequest) -> Response:
    state = _state(request)
    return JSONResponse({"object": "list", "data": [
        {"id": name, "object": "model", "created": state.created, "owned_by": "bitnet"}
        for name in state.models.specs]})


async def health(request: HTTPRequest) -> Response:
    """200 once every model variant serves (a failed reload keeps the old file
    serving: still 200, with the error under "models"); 503 before."""
    manager = _state(request).models
    status = manager.status()
    if all(v == "ok" for v in status.values()):
        warnings = manager.warnings()
        return JSONResponse({"status": "ok", "models": warnings} if warnings else {"status": "ok"})
    if any(v not in ("ok", "loading") for v in status.values()):
        return JSONResponse({"status": "error", "error": manager.load_error, "models": status}, status_code=503)
    return JSONResponse({"status": "loading", "models": status}, status_code=503)


async def metrics(request: HTTPRequest) -> Response:
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)


async def tokenize(request: HTTPRequest) -> Response:
    state = _state(request)
    body = await _read_json(request, state.config.max_body_bytes)
    content, add_special, model = parse_tokenize(body)
    engine = state.pick(model, count=False).engine
    try:
        tokens = engine.model.tokenize(content, add_bos=add_special)
    except BitNetError as exc:  # not UTF-8: JSON can carry a lone surrogate escape
        raise bad(str(exc), "content") from None
    return JSONResponse({"tokens": tokens})


async def detokenize(request: HTTPRequest) -> Response:
    state = _state(request)
    body = await _read_json(request, state.config.max_body_bytes)
    engine = state.pick(_model_field(body), count=False).engine
    tokens = parse_detokenize(body, engine.n_vocab)
    return JSONResponse({"content": engine.model.detokenize(tokens)})


# ---- the app ---------------------------------------------------------------------------


def _model_field(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string", "model")
    return model


async def _api_error(request: HTTPRequest, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return _error_response(exc)


async def _http_error(request: HTTPRequest, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return _error_response(APIError(exc.status_code, str(exc.detail), type=kind))


async def _server_error(request: HTTPRequest, exc: Exception) -> Response:
    return _error_response(APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error"))


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI app. The model starts loading when the app starts (lifespan);
    ``app.state.bitnet`` is its :class:`ServerState`."""
    state = ServerState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loader = threading.Thread(target=state.load, name="bitnet-load", daemon=True)
        loader.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, loader.join)
            await asyncio.get_running_loop().run_in_executor(None, state.models.close)

    app = Starlette(
        routes=[
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/tokenize", tokenize, methods=["POST"]),
            Route("/detokenize", detokenize, methods=["POST"]),
        ],
        exception_handlers={APIError: _api_error, HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.bitnet = state
    # Outermost, so that 401s and every error response are counted too.
    app.add_middleware(_Gate, state=state)  # type: ignore[arg-type]
    return app
