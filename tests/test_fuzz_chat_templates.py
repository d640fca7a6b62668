"""Fuzzing chat-template rendering (issue 11) with hypothesis.

A GGUF's ``tokenizer.chat_template`` is code from an untrusted file, and the
messages come from users (over HTTP, for ``bitnet serve``). Whatever either
holds, ``chat_templates.render`` must return a string or raise
``ChatTemplateError``: never another exception, never a hang (the step
budget), never a huge allocation (the size limits of
``bitnet._template_sandbox``).

Three properties:

* real templates (the built-ins, which must keep every message's text, and
  a Hugging Face-style one) render any messages, any Unicode included;
* templates assembled from Jinja fragments, hostile ones among them (nested
  ``range`` loops, ``'x' * 10**10``, doubling a namespace value, recursive
  macros, huge widths and indents), end in a string or ``ChatTemplateError``
  within seconds;
* arbitrary text as a template does the same.

``BITNET_FUZZ_EXAMPLES`` raises the number of examples for a long run
(fuzz/README.md); CI runs the default.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

pytest.importorskip("jinja2")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bitnet import _template_sandbox as sandbox  # noqa: E402
from bitnet import chat_templates as ct  # noqa: E402

EXAMPLES = int(os.environ.get("BITNET_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="BITNET_FUZZ_EXAMPLES" not in os.environ, suppress_health_check=[HealthCheck.too_slow])

# One render may take at most this long: the step budget stops a busy template
# after about 1-3 s on a slow shared machine.
SECONDS_PER_RENDER = 15.0
# Peak RSS may grow by at most this much over the whole module: a template
# that allocated a gigabyte before a check caught it would show here.
RSS_GROWTH_MB = 600

# A Hugging Face-style template: role alternation enforced with
# raise_exception, a namespace, loop variables, tojson and a system prompt.
HF_STYLE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set rest = messages[1:] %}{% else %}{% set system = '' %}{% set rest = messages %}{% endif %}"
    "{% set ns = namespace(turns=0) %}"
    "{% if system %}<<SYS>>{{ system | trim }}<</SYS>>\n{% endif %}"
    "{% for message in rest %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% set ns.turns = ns.turns + 1 %}"
    "{% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% else %} {{ message['content'] | tojson }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<!-- {{ ns.turns }} turns -->{% endif %}"
)

roles = st.sampled_from(["system", "user", "assistant", "tool"]) | st.text(max_size=12)
contents = st.text(max_size=300)  # any code point, lone surrogates and NUL included
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": contents}), min_size=1, max_size=12)


def _render(source: str, msgs: list[dict[str, str]]) -> str | None:
    """The rendered text, or None for a ChatTemplateError; anything else fails the test."""
    start = time.monotonic()
    try:
        out = ct.render(source, msgs, bos_token="<s>", eos_token="</s>")
    except ct.ChatTemplateError:
        out = None
    elapsed = time.monotonic() - start
    assert elapsed < SECONDS_PER_RENDER, f"{elapsed:.1f} s for {source!r}"
    if out is not None:
        assert isinstance(out, str) and len(out) <= sandbox.MAX_SIZE
    return out


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


@pytest.fixture(scope="module", autouse=True)
def _bounded_memory():
    before = _peak_rss_mb()
    yield
    after = _peak_rss_mb()
    if before is not None and after is not None:
        assert after - before < RSS_GROWTH_MB, f"peak RSS grew by {after - before:.0f} MB while fuzzing templates"


# ---- real templates, fuzzed messages ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ct.BUILTIN_TEMPLATES))
@FUZZ
@given(msgs=messages)
def test_builtin_templates_render_any_messages_and_keep_their_text(name: str, msgs: list[dict[str, str]]) -> None:
    out = _render(ct.BUILTIN_TEMPLATES[name], msgs)
    assert out is not None, "a built-in template must render every list of messages"
    for m in msgs:
        # bitnet and llama3 strip each content, as their Hugging Face templates do.
        assert (m["content"].strip() if name in ("bitnet", "llama3") else m["content"]) in out


@FUZZ
@given(msgs=messages)
def test_a_hugging_face_style_template_renders_or_refuses_any_messages(msgs: list[dict[str, str]]) -> None:
    out = _render(HF_STYLE, msgs)
    if out is not None:
        assert out.startswith("<s>")


def test_the_hf_style_template_reports_its_own_error() -> None:
    bad_turns = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(ct.ChatTemplateError, match="roles must alternate"):
        ct.render(HF_STYLE, bad_turns)


# ---- templates assembled from fragments, hostile ones included ----------------------------------

_numbers = st.sampled_from(["0", "1", "-1", "2", "7", "100", "99999", "10**6", "10**10", "10**100000", "2**64",
                            "0.5", "1e308", "messages|length"])
_strings = st.sampled_from(["'x'", "''", "'%s'", "'%999999999s'", "'{:>999999999}'", "'{}'", "'\\t'",
                            "messages[0].content", "messages[-1]['role']", "bos_token", "ns.s", "'<|eot_id|>'"])
_filters = st.sampled_from([
    "trim", "upper", "length", "list", "string", "tojson", "tojson(indent=2)", "tojson(indent=10**6)",
    "center(10**9)", "center(40)", "indent(10**9)", "indent(4)", "replace('', 'yy')", "replace('x', 'xx')",
    "wordwrap(1, true, 'abcdef')", "join('--')", "batch(10**9, 'x')", "batch(3)", "sum", "first", "last",
    "reverse", "unique", "sort", "int", "float", "abs", "default('d')", "truncate(5)", "format(1, 2)",
    "map('upper')", "select", "capitalize", "title", "count", "wordcount", "slice(10**6)", "round",
    "dictsort", "items", "xmlattr", "e", "safe", "striptags", "urlencode", "filesizeformat",
])
_binops = st.sampled_from(["+", "-", "*", "**", "/", "//", "%", "~", "==", "<", "and", "or", "in"])


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 5 if depth < 3 else 1))
    if kind == 0:
        return draw(_numbers)
    if kind == 1:
        return draw(_strings)
    if kind == 2:
        return f"({draw(_expressions(depth + 1))} {draw(_binops)} {draw(_expressions(depth + 1))})"
    if kind == 3:
        return f"({draw(_expressions(depth + 1))} | {draw(_filters)})"
    if kind == 4:
        method = draw(st.sampled_from(["center(10**9)", "rjust(99)", "zfill(10**8)", "replace('', 'ab')",
                                       "join(range(99999)|map('string'))", "format(10**9)",
                                       "expandtabs(10**8)", "split()", "strip()", "startswith('x')"]))
        return f"({draw(_strings)}).{method}"
    return draw(st.sampled_from(["range(99999)", "range(10**9)", "lipsum(10**6)", "namespace(s='x')",
                                 "strftime_now('%Y')", "strftime_now('%999999Y')", "raise_exception('boom')",
                                 "dict(a=1)", "cycler(1, 2)", "loop"]))


@st.composite
def _statements(draw: st.DrawFn, depth: int = 0) -> str:
    body = lambda: "".join(draw(st.lists(_statements(depth + 1), max_size=3)))  # noqa: E731
    kind = draw(st.integers(0, 7 if depth < 3 else 1))
    if kind == 0:
        return draw(st.text(alphabet="ab \n{}%#", max_size=8)).replace("{", "").replace("%", "")
    if kind == 1:
        return "{{ " + draw(_expressions()) + " }}"
    if kind == 2:
        return "{% for m in " + draw(st.sampled_from(["messages", "range(99999)", "ns.s", "messages[0].content"])) \
            + " %}" + body() + "{% endfor %}"
    if kind == 3:
        return "{% if " + draw(_expressions()) + " %}" + body() + "{% else %}" + body() + "{% endif %}"
    if kind == 4:
        return "{% set ns.s = " + draw(_expressions()) + " %}"
    if kind == 5:
        return "{% set ns.s = ns.s ~ ns.s %}{% set ns.s = ns.s + ns.s %}"
    if kind == 6:
        return "{% macro f(n) %}" + body() + "{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"
    return "{% for i in range(99999) %}" + body() + "{% if i > 5 %}{% break %}{% endif %}{% endfor %}"


templates = st.builds(lambda parts: "{% set ns = namespace(s='x') %}" + "".join(parts),
                      st.lists(_statements(), min_size=1, max_size=6))


@FUZZ
@given(source=templates, msgs=messages)
def test_assembled_templates_end_in_text_or_a_chat_template_error(source: str, msgs: list[dict[str, str]]) -> None:
    _render(source, msgs)


@FUZZ
@given(source=st.text(max_size=200), msgs=messages)
def test_arbitrary_text_as_a_template(source: str, msgs: list[dict[str, str]]) -> None:
    _render(source, msgs)


# ---- the limits, one by one (so a weakened limit fails here, not only by chance above) ----------

HOSTILE = {
    "nested loops": "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
    "repetition": "{{ 'x' * 10**10 }}",
    "big power": "{{ 10**100000 }}",
    "doubling with ~": "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
                       "{% endfor %}",
    "doubling with +": "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
                       "{% endfor %}",
    "center": "{{ 'x' | center(999999999) }}",
    "printf width": "{{ '%999999999s' % 'x' }}",
    "format width": "{{ '{:>999999999}'.format('x') }}",
    "str.rjust": "{{ 'x'.rjust(10**9) }}",
    "str.replace": "{{ ('x' * 1000000).replace('', 'y' * 20) }}",
    "join": "{{ (['x' * 1000000] * 20) | join('y' * 100) }}",
    "indent": "{{ ('a\\n' * 100000) | indent(1000) }}",
    "tojson indent": "{{ range(10) | list | tojson(indent=10**6) }}",
    "batch fill": "{{ range(10) | batch(10**9, 'x') | list }}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "lipsum": "{{ lipsum(10**6) }}",
    "output": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "strftime width": "{{ strftime_now('%999999999Y') }}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_template_is_stopped_with_a_clear_error(name: str) -> None:
    start = time.monotonic()
    with pytest.raises(ct.ChatTemplateError) as info:
        ct.render(HOSTILE[name], [{"role": "user", "content": "x"}])
    assert time.monotonic() - start < SECONDS_PER_RENDER
    assert str(info.value).startswith("chat template")


def test_the_limits_leave_a_long_real_conversation_alone() -> None:
    msgs = [{"role": "user", "content": "hello " * 200}, {"role": "assistant", "content": "hi " * 200}] * 1000
    out = ct.render(ct.BUILTIN_TEMPLATES["llama3"], msgs)
    assert out.count("<|eot_id|>") == 2000


def test_the_step_budget_restores_the_previous_trace_hook() -> None:
    import sys

    def hook(frame, event, arg):  # noqa: ANN001, ANN202 - sys.settrace's signature
        return None

    sys.settrace(hook)
    try:
        ct.render("{{ messages[0].content }}", [{"role": "user", "content": "x"}])
        with pytest.raises(ct.ChatTemplateError):
            ct.render(HOSTILE["nested loops"], [{"role": "user", "content": "x"}])
        assert sys.gettrace() is hook
    finally:
        sys.settrace(None)


def test_a_gc_callback_during_a_recursive_macro_is_left_alone(monkeypatch) -> None:
    """Found by the long hypothesis run: a gc callback that ran under the step
    budget's hook at the recursion limit raised there, outside the render
    ("Exception ignored in: <gc callback>"). The collector now pauses during a
    render, and comes back as it was."""
    import gc

    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    calls: list[str] = []

    def callback(phase: str, info: dict) -> None:
        calls.append(phase)

    gc.callbacks.append(callback)
    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        with pytest.raises(ct.ChatTemplateError, match="RecursionError"):
            ct.render(HOSTILE["recursion"], [{"role": "user", "content": "x"}])
        assert gc.isenabled()
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(callback)
    assert unraisable == []
