"""Chat templates: OpenAI-style messages -> the prompt text a chat model expects.

A GGUF converted from Hugging Face usually carries the model's own Jinja
template (``tokenizer.chat_template``); it is rendered the way HF
transformers' ``apply_chat_template`` does: jinja2's
``ImmutableSandboxedEnvironment`` with ``trim_blocks`` and ``lstrip_blocks``,
the ``loopcontrols`` extension, ``raise_exception``, ``strftime_now`` and a
``tojson`` filter that keeps non-ASCII text, and the variables ``messages``,
``add_generation_prompt``, ``bos_token`` and ``eos_token``. The sandbox keeps
a template from reaching Python internals (``{{ ''.__class__.__mro__ }}``
raises), and limits on steps and sizes keep a hostile template from hanging
or filling memory (``bitnet._template_sandbox``). Whatever goes wrong inside
a template (a syntax error, ``raise_exception()``, ``1 / 0``, a limit) raises
:class:`ChatTemplateError`.

A GGUF without a template gets a built-in one (:data:`BUILTIN_TEMPLATES`),
picked by architecture and vocabulary (:func:`guess_chat_format`), or named
with ``chat_format=``:

``bitnet``
    BitNet-b1.58-2B-4T: ``"System: ...<|eot_id|>User: ...<|eot_id|>Assistant: "``,
    each turn ``Role: content`` (content stripped) closed by ``<|eot_id|>``, as
    in the model's own Hugging Face template. (llama.cpp's built-in
    ``bitnet`` closes only user turns with ``<|eot_id|>``.)
``llama3``
    ``<|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|>``
``chatml``
    ``<|im_start|>role\\ncontent<|im_end|>\\n`` (also llama.cpp's fallback)
``falcon3``
    ``<|role|>\\ncontent\\n``

The built-ins leave BOS out, like llama.cpp's: the model adds it when it
tokenizes the prompt (``Model.chat``), and a template that writes
``bos_token`` itself does not get a second one.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

BUILTIN_TEMPLATES: dict[str, str] = {
    "bitnet": (
        "{% for message in messages %}"
        "{{ message['role'] | capitalize }}: {{ message['content'] | trim }}<|eot_id|>"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
    ),
    "llama3": (
        "{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
        " + message['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
    "falcon3": (
        "{% for message in messages %}"
        "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    ),
}
"""Built-in templates by ``chat_format`` name."""

BITNET_ARCHS = ("bitnet-b1.58", "bitnet-25")


class ChatTemplateError(ValueError):
    """A chat template failed: bad syntax, ``raise_exception()``, unsafe access, a
    run-time error inside the template, or a time or memory limit."""


def guess_chat_format(metadata: Mapping[str, Any]) -> str:
    """The built-in format for a GGUF without ``tokenizer.chat_template``:
    BitNet architectures use ``bitnet``; otherwise the vocabulary decides
    (LLaMA-3 header tokens, ChatML ``<|im_start|>``, Falcon3 role tokens);
    ``chatml`` when nothing matches, as llama.cpp does."""
    if metadata.get("general.architecture") in BITNET_ARCHS:
        return "bitnet"
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = set(tokens) if isinstance(tokens, list) else set()
    if {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"} <= vocab:
        return "llama3"
    if "<|im_start|>" in vocab:
        return "chatml"
    if {"<|user|>", "<|assistant|>"} <= vocab:
        return "falcon3"
    return "chatml"


def template_source(metadata: Mapping[str, Any], chat_format: str | None = None) -> str:
    """The Jinja source to use: ``chat_format`` (a built-in name, or a Jinja
    template given as text), else the GGUF's ``tokenizer.chat_template``,
    else the built-in :func:`guess_chat_format` picks."""
    if chat_format is not None:
        if chat_format in BUILTIN_TEMPLATES:
            return BUILTIN_TEMPLATES[chat_format]
        if "{{" in chat_format or "{%" in chat_format:
            return chat_format
        names = ", ".join(sorted(BUILTIN_TEMPLATES))
        raise ValueError(f"unknown chat_format {chat_format!r}: use one of {names}, or a Jinja template")
    own = metadata.get("tokenizer.chat_template")
    if isinstance(own, str) and own.strip():
        return own
    return BUILTIN_TEMPLATES[guess_chat_format(metadata)]


def check_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as a list of plain dicts; each needs a str ``role`` and ``content``."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError('messages must be a list of {"role": ..., "content": ...} dicts')
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"messages[{i}] is a {type(message).__name__}, not a dict")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise TypeError(f"messages[{i}][{key!r}] must be a str")
        out.append(dict(message))
    if not out:
        raise ValueError("messages is empty")
    return out


def render(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    **extra: Any,
) -> str:
    """Render a chat template (see the module docstring for the environment)."""
    import jinja2

    from ._template_sandbox import run_limited

    msgs = check_messages(messages)
    try:
        template = _compile(source)
        return run_limited(lambda: template.render(
            messages=msgs,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            **extra,
        ))
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"chat template: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - untrusted code: 1 / 0, 'a' + 1, a recursive macro, ...
        raise ChatTemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from exc


def _raise_exception(message: str) -> None:
    import jinja2

    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: Any = None, sort_keys: bool = False) -> str:
    # HF's tojson: unlike jinja2's own, it keeps non-ASCII and does not escape HTML.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    # glibc's strftime takes field widths ('%999999999Y'): keep them small.
    if not isinstance(fmt, str) or len(fmt) > 256 or re.search(r"%\D?\d{4}", fmt):
        raise ValueError(f"strftime_now: unsupported format {str(fmt)[:64]!r}")
    return datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    from ._template_sandbox import new_environment

    env = new_environment()
    env.add_filter("tojson", _tojson)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)
