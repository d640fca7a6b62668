"""The Jinja environment that renders untrusted chat templates, with limits.

A GGUF's ``tokenizer.chat_template`` is code that came with a model file, and
the model file is untrusted input. jinja2's ``ImmutableSandboxedEnvironment``
keeps a template away from Python internals, but not from running for hours
(``{% for a in range(99999) %}{% for b in range(99999) %}...``) or filling
memory (``{{ 'x' * 10**10 }}``, a namespace value doubled 40 times). So:

* **time**: a render may execute at most :data:`MAX_STEPS` Python lines (the
  template's own code and the jinja2 and filter code it calls), counted by a
  ``sys.settrace`` hook that is installed for the render only and restores
  whatever hook was there before (a debugger's, coverage's);
* **memory**: no value a template makes may exceed :data:`MAX_SIZE` items
  (characters of a string, elements of a list). Every Python function's
  return value is checked on the way out, and the operations that build
  large values in one C-level step are checked before they run: ``*``,
  ``**`` and ``%``, the width/count arguments of filters and ``str`` methods
  (``center``, ``indent``, ``zfill``, ``replace``, ``join``, ...) and the
  widths written in format strings.

A template that breaks a limit raises :class:`TemplateLimitError`, which
``chat_templates.render`` reports as a ``ChatTemplateError`` like any other
template failure. The limits are far above what a real chat template needs:
llama-3's template over 1,000 messages runs about 60,000 steps.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_STEPS = 5_000_000
"""Python lines one render may execute (about 2-4 s of CPU)."""

MAX_SIZE = 1 << 24
"""Largest string (characters) or list (elements) a template may build: 16 Mi."""

MAX_INT_BITS = 1 << 16
"""Largest integer a template may compute with ``*`` or ``**``, in bits."""

MAX_JSON_INDENT = 64
"""Largest ``tojson(indent=...)``: the indent repeats on every line of the output."""


class TemplateLimitError(jinja2.exceptions.SecurityError):
    """A chat template went past a time or memory limit of this module."""


def _too_big(what: str, size: int) -> TemplateLimitError:
    return TemplateLimitError(f"{what} would have {size:,} items, more than the limit of {MAX_SIZE:,}")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) else 0


def check_size(value: Any, what: str = "a value") -> Any:
    """``value`` unchanged, unless it is a string or container over MAX_SIZE."""
    size = _size(value)
    if size > MAX_SIZE:
        raise _too_big(what, size)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_count(value: Any, what: str) -> None:
    """A width, repeat count or fill length given as an integer argument."""
    if _is_int(value) and value > MAX_SIZE:
        raise _too_big(what, value)


# Numbers written in a format string: '%999999999s', '{:>999999999}', '{:.99999999f}'.
_DIGITS = re.compile(r"\d+")


def _check_format_string(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for digits in _DIGITS.findall(fmt):
        if len(digits) > 8 and int(digits) > MAX_SIZE:
            raise _too_big("a formatted field", int(digits))
    # '%*s' and '{:{w}}' take their widths from the arguments.
    if "*" in fmt or re.search(r"\{[^{}]*\{", fmt):
        for value in (*args, *kwargs.values()):
            _check_count(value, "a formatted field")


def _joined_size(sep: str, items: list[Any]) -> int:
    return len(sep) * max(len(items) - 1, 0) + sum(_size(item) for item in items)


def _replaced_size(text: str, old: str, new: str, count: int = -1) -> int:
    hits = text.count(old)
    if _is_int(count) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


def _check_str_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Checks a call of a bound ``str`` method; returns args (a join's items listed)."""
    text = method.__self__
    name = method.__name__
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_count(args[0], f"str.{name}")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if _is_int(tabsize) and text.count("\t") * tabsize > MAX_SIZE:
            raise _too_big("str.expandtabs", text.count("\t") * tabsize)
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        size = _replaced_size(text, *args[:3])
        if size > MAX_SIZE:
            raise _too_big("str.replace", size)
    elif name == "join" and len(args) == 1:
        items = list(args[0])
        size = _joined_size(text, items)
        if size > MAX_SIZE:
            raise _too_big("str.join", size)
        return (items,)
    return args


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateLimitError(f"a product of more than {MAX_INT_BITS:,} bits")
        elif _is_int(right) and _size(left) * right > MAX_SIZE:
            raise _too_big("a repeated value", _size(left) * right)
        elif _is_int(left) and _size(right) * left > MAX_SIZE:
            raise _too_big("a repeated value", _size(right) * left)
    elif operator == "**":
        if _is_int(left) and _is_int(right) and abs(left) > 1 and right > 0:
            if right * left.bit_length() > MAX_INT_BITS:
                raise TemplateLimitError(f"a power of more than {MAX_INT_BITS:,} bits")
    elif operator == "%" and isinstance(left, str):
        args = right if isinstance(right, tuple) else (right,)
        _check_format_string(left, args, {})


# ---- filters: each checked before it runs (its size arguments) and after (its result) ----


def _check_filter_args(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for arg in (*args, *kwargs.values()):
        _check_count(arg, f"the filter {name}")
    if name == "indent" and isinstance(value, str):
        width = args[0] if args else kwargs.get("width", 4)
        width = len(width) if isinstance(width, str) else width
        if _is_int(width) and (value.count("\n") + 1) * width > MAX_SIZE:
            raise _too_big("the filter indent", (value.count("\n") + 1) * width)
    elif name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        size = _replaced_size(value, old, new, args[2] if len(args) > 2 else -1)
        if size > MAX_SIZE:
            raise _too_big("the filter replace", size)
    elif name == "wordwrap" and isinstance(value, str):
        wrapstring = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
        if isinstance(wrapstring, str) and len(value) * (len(wrapstring) + 1) > MAX_SIZE:
            raise _too_big("the filter wordwrap", len(value) * (len(wrapstring) + 1))
    elif name == "format" and isinstance(value, str):
        _check_format_string(value, args, kwargs)
    elif name == "tojson":
        indent = args[1] if len(args) > 1 else kwargs.get("indent")
        if _is_int(indent) and indent > MAX_JSON_INDENT:
            raise TemplateLimitError(f"tojson indent {indent} is over the limit of {MAX_JSON_INDENT}")


def _limited_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # Filters marked pass_context / pass_eval_context / pass_environment get that first.
    first = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)  # keeps jinja_pass_arg, so jinja2 still passes the context
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        value = args[first] if len(args) > first else None
        if name in ("join", "sum") and value is not None and not isinstance(value, (str, list, tuple, dict)):
            value = list(value)  # a generator: listed once here, so its size can be checked
            args = (*args[:first], value, *args[first + 1:])
        if name == "join" and isinstance(value, list):
            sep = args[first + 1] if len(args) > first + 1 else kwargs.get("d", "")
            if isinstance(sep, str) and _joined_size(sep, value) > MAX_SIZE:
                raise _too_big("the filter join", _joined_size(sep, value))
        if name == "sum" and isinstance(value, list) and sum(_size(v) for v in value) > MAX_SIZE:
            raise _too_big("the filter sum", sum(_size(v) for v in value))
        _check_filter_args(name, value, args[first + 1:], kwargs)
        return check_size(func(*args, **kwargs), f"the filter {name}")

    return wrapper


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox with this module's size checks on operators and calls."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _limited_filter(name, f) for name, f in self.filters.items()}

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        self.filters[name] = _limited_filter(name, func)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return check_size(super().call_binop(context, operator, left, right), f"the result of {operator!r}")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - jinja2's signature
        # jinja2 hands out str.format / format_map wrapped in its sandboxed formatter.
        wrapped = getattr(__obj, "__wrapped__", None)
        if isinstance(getattr(wrapped, "__self__", None), str):
            _check_format_string(wrapped.__self__, args, kwargs)
        elif isinstance(getattr(__obj, "__self__", None), str):
            args = _check_str_method(__obj, args, kwargs)
        return check_size(super().call(__context, __obj, *args, **kwargs), "a call's result")


class _StepBudget:
    """The settrace hook: counts executed lines, checks returned values."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    def __call__(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.left -= 1
            if self.left < 0:
                raise TemplateLimitError(f"the template ran more than {MAX_STEPS:,} steps")
        elif event == "return":
            check_size(arg, "a returned value")
        return self


# The cyclic garbage collector is paused while any render runs: its callbacks
# (gc.callbacks) would otherwise run under the budget's hook, be charged to
# the template, and, when a recursive macro has reached Python's recursion
# limit, fail there with a RecursionError nobody can catch ("Exception
# ignored in: <gc callback>"). Renders are short; the collector catches up after.
_gc_lock = threading.Lock()
_gc_renders = 0
_gc_was_enabled = False


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    global _gc_renders, _gc_was_enabled
    with _gc_lock:
        if _gc_renders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_renders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_renders -= 1
            if _gc_renders == 0 and _gc_was_enabled:
                gc.enable()


def run_limited(render: Callable[[], str]) -> str:
    """``render()`` under the step budget and the size limit on its result."""
    previous = sys.gettrace()
    with _gc_paused():
        sys.settrace(_StepBudget(MAX_STEPS))
        try:
            return check_size(render(), "the rendered prompt")
        finally:
            sys.settrace(previous)


def new_environment() -> LimitedSandbox:
    """The environment HF transformers renders chat templates in, with the limits."""
    return LimitedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
