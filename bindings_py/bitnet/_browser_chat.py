"""Chat prompts without jinja2, for the Pyodide backend (bitnet._browser).

Pyodide installs no packages offline, so jinja2 is usually missing in the
browser. The built-in templates (``bitnet.chat_templates.BUILTIN_TEMPLATES``)
are simple enough to render in plain Python, with the same text as their
Jinja source (tests/test_web_page.py checks that natively). A GGUF's own
Jinja template (``tokenizer.chat_template``) is rendered with jinja2 when it
is importable; otherwise the built-in format :func:`chat_templates.guess_chat_format`
picks for the model is used instead, with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from . import chat_templates


def _bitnet(role: str, content: str) -> str:
    return f"{role.capitalize()}: {content.strip()}<|eot_id|>"


def _llama3(role: str, content: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content.strip()}<|eot_id|>"


def _chatml(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def _falcon3(role: str, content: str) -> str:
    return f"<|{role}|>\n{content}\n"


# name -> (one message, the assistant's turn header)
BUILTIN_RENDERERS = {
    "bitnet": (_bitnet, "Assistant: "),
    "llama3": (_llama3, "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "chatml": (_chatml, "<|im_start|>assistant\n"),
    "falcon3": (_falcon3, "<|assistant|>\n"),
}


def render_builtin(name: str, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True) -> str:
    """A built-in template rendered in plain Python (the text its Jinja source gives)."""
    one, header = BUILTIN_RENDERERS[name]
    text = "".join(one(m["role"], m["content"]) for m in chat_templates.check_messages(messages))
    return text + header if add_generation_prompt else text


def _have_jinja2() -> bool:
    import importlib.util

    return importlib.util.find_spec("jinja2") is not None


def chat_prompt(
    metadata: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    chat_format: str | None,
    bos_token: str,
    eos_token: str,
) -> str:
    """``Model.chat_prompt`` for the browser: as the native one when jinja2 is
    importable, else with the built-in templates (see the module docstring)."""
    if _have_jinja2():
        source = chat_templates.template_source(metadata, chat_format)
        return chat_templates.render(source, messages, bos_token=bos_token, eos_token=eos_token,
                                     add_generation_prompt=True)
    if chat_format in BUILTIN_RENDERERS:
        return render_builtin(chat_format, messages)
    if chat_format is not None:
        chat_templates.template_source(metadata, chat_format)  # an unknown name: its ValueError
        raise chat_templates.ChatTemplateError(
            "a Jinja chat_format needs jinja2, which this Python (Pyodide) does not have; "
            f"use one of {', '.join(sorted(BUILTIN_RENDERERS))}")
    name = chat_templates.guess_chat_format(metadata)
    own = metadata.get("tokenizer.chat_template")
    if isinstance(own, str) and own.strip():
        warnings.warn(f"jinja2 is not available: the model's own chat template is replaced by the built-in {name!r} one",
                      RuntimeWarning, stacklevel=3)
    return render_builtin(name, messages)
