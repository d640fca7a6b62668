"""Request validation for the OpenAI-compatible endpoints.

Every way a request body can be wrong ends here as an :class:`APIError`, which
the app turns into OpenAI's error shape::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens", "code": null}}

so clients (the official ``openai`` package among them) raise their usual
exception types. Parsing is deliberately by hand, not pydantic: the rules are
few, and each message names the parameter the way OpenAI's do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class APIError(Exception):
    """An error answered to the client with ``status`` and OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        message = utf8_encodable(self.message)
        return {"error": {"message": message, "type": self.type, "param": self.param, "code": self.code}}


def utf8_encodable(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD.

    Messages quote what the client sent (an unknown model name, say), and
    JSON lets a client send "\\ud800", which Python decodes to a lone
    surrogate that UTF-8 cannot encode: the error body itself would then
    fail with a 500. A surrogate pair sent as two escapes becomes its one
    character again.
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def bad(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 invalid_request_error."""
    return APIError(400, message, param=param, code=code)


@dataclass
class GenerationParams:
    """What both /v1/completions and /v1/chat/completions ask for, validated.

    Sampling defaults are llama.cpp server's (temperature 0.8, top_k 40,
    top_p 0.95, min_p 0.05), not OpenAI's temperature 1: users of a local
    server expect llama.cpp's behaviour, and ``temperature: 0`` is greedy either way.
    ``max_tokens`` is None when the request left it out (the endpoint picks the default).
    """

    model: str | None = None
    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repeat_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    user: str | None = None  # OpenAI's end-user id: keeps a user on one variant of an A/B test
    top_logprobs: int | None = None  # None: no logprobs; else alternatives per token (0-20)


@dataclass
class CompletionRequest(GenerationParams):
    """POST /v1/completions: ``prompt`` is text, or token ids."""

    prompt: str | list[int] = ""


@dataclass
class ChatRequest(GenerationParams):
    """POST /v1/chat/completions: ``messages`` with plain-text contents."""

    messages: list[dict[str, str]] = field(default_factory=list)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _opt_number(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not _is_number(value) or not lo <= value <= hi:
        raise bad(f"'{name}' must be a number between {lo:g} and {hi:g}, got {value!r}", name)
    return float(value)


def _opt_int(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or not lo <= value <= hi:
        raise bad(f"'{name}' must be an integer between {lo} and {hi}, got {value!r}", name)
    return int(value)


def _common(body: Any, out: GenerationParams, max_tokens_cap: int) -> None:
    """Fill the fields shared by both endpoints from ``body`` (already a dict)."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string", "model")
    out.model = model
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad("'user' must be a string", "user")
    out.user = user
    n = body.get("n")
    if n is not None and n != 1:
        raise bad("only n=1 is supported", "n")
    # max_completion_tokens is the newer name of the chat API; either may come.
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is not None and (not _is_int(value) or value < 0):
        raise bad(f"'{name}' must be a non-negative integer, got {value!r}", name)
    if value is not None and value > max_tokens_cap:
        raise bad(f"'{name}' is {value}, more than this server allows ({max_tokens_cap})", name)
    out.max_tokens = value
    out.temperature = _opt_number(body, "temperature", out.temperature, 0.0, 2.0)
    out.top_p = _opt_number(body, "top_p", out.top_p, 0.0, 1.0)
    out.min_p = _opt_number(body, "min_p", out.min_p, 0.0, 1.0)
    # OpenAI's penalties (-2 to 2), and llama.cpp server's repeat_penalty.
    out.frequency_penalty = _opt_number(body, "frequency_penalty", out.frequency_penalty, -2.0, 2.0)
    out.presence_penalty = _opt_number(body, "presence_penalty", out.presence_penalty, -2.0, 2.0)
    out.repeat_penalty = _opt_number(body, "repeat_penalty", out.repeat_penalty, 0.0, 10.0)
    if out.repeat_penalty <= 0:
        raise bad("'repeat_penalty' must be above 0 (1 is off)", "repeat_penalty")
    top_k = _opt_int(body, "top_k", -1, 1 << 30)
    if top_k is not None:
        out.top_k = top_k
    out.seed = _opt_int(body, "seed", -(1 << 63), (1 << 64) - 1)
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
            raise bad("'stop' must be a string or a list of at most 4 strings", "stop")
        out.stop = [s for s in stop if s]
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise bad("'stream' must be a boolean", "stream")
    out.stream = bool(stream)
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad("'stream_options' must be an object", "stream_options")
        usage = options.get("include_usage", False)
        if not isinstance(usage, bool):
            raise bad("'stream_options.include_usage' must be a boolean", "stream_options")
        out.include_usage = usage


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    return body


MAX_TOP_LOGPROBS = 20


def parse_completion(body: Any, max_tokens_cap: int) -> CompletionRequest:
    body = _object(body)
    out = CompletionRequest()
    _common(body, out, max_tokens_cap)
    # /v1/completions: "logprobs": N asks for the sampled token's and N alternatives'.
    out.top_logprobs = _opt_int(body, "logprobs", 0, MAX_TOP_LOGPROBS)
    prompt = body.get("prompt")
    # OpenAI's prompt may be a string, token ids, or a batch of either; one
    # prompt per request here (n=1 and no batches keeps one choice per response).
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        out.prompt = prompt
    elif isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
        out.prompt = [int(t) for t in prompt]
    else:
        raise bad("'prompt' must be a string or a list of token ids (one prompt per request)", "prompt")
    return out


def _content_text(content: Any, index: int) -> str:
    """A message's content as text: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad(f"messages[{index}].content: only text parts are supported", "messages")
            parts.append(part["text"])
        return "".join(parts)
    if content is None:
        return ""
    raise bad(f"messages[{index}].content must be a string or a list of text parts", "messages")


def parse_chat(body: Any, max_tokens_cap: int) -> ChatRequest:
    body = _object(body)
    out = ChatRequest()
    _common(body, out, max_tokens_cap)
    # /v1/chat/completions: "logprobs": true, and "top_logprobs": N alternatives.
    wanted = body.get("logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise bad("'logprobs' must be a boolean", "logprobs")
    top = _opt_int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top is not None and not wanted:
        raise bad("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    out.top_logprobs = (top or 0) if wanted else None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"messages[{i}] must be an object with a 'role'", "messages")
        out.messages.append({"role": m["role"], "content": _content_text(m.get("content"), i)})
    return out


def parse_tokenize(body: Any) -> tuple[str, bool, str | None]:
    """llama.cpp's /tokenize: ``{"content": str, "add_special": bool}``, and
    ``"model"`` on a server of several models."""
    body = _object(body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string", "model")
    content = body.get("content")
    if not isinstance(content, str):
        raise bad("'content' must be a string", "content")
    add_special = body.get("add_special", False)
    if not isinstance(add_special, bool):
        raise bad("'add_special' must be a boolean", "add_special")
    return content, add_special, model


def parse_detokenize(body: Any, n_vocab: int) -> list[int]:
    """llama.cpp's /detokenize: ``{"tokens": [int, ...]}``."""
    body = _object(body)
    tokens = body.get("tokens")
    if not isinstance(tokens, list) or not all(_is_int(t) for t in tokens):
        raise bad("'tokens' must be a list of token ids", "tokens")
    for t in tokens:
        if not 0 <= t < n_vocab:
            raise bad(f"token id {t} is out of range [0, {n_vocab})", "tokens")
    return [int(t) for t in tokens]
