"""Text generation from Python: ``Model.stream`` and ``Model.generate`` (UTF-8
safety, stop strings, early exits) and the C callback API under them,
``bitnet_generate_tokens_cb``.

Most tests use a scripted model (tests/reference/scripted_model.py) whose
greedy output is known in advance, so the expected text is written out here;
the sampled cases use the factory's random model and compare the two API
paths with each other.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

bitnet = pytest.importorskip("bitnet")
from bitnet._generation import generate_with_callback  # noqa: E402
from bitnet._lib import ffi, lib  # noqa: E402
from bitnet._sampling import Sampling  # noqa: E402

from reference import model_factory  # noqa: E402
from reference.scripted_model import (  # noqa: E402
    ANSWER, EOS, EOT, LOOP_PROMPT, LOOP_TEXT, STOP_PROMPT, STOP_TEXT, UTF8_PIECES, UTF8_PROMPT, demo_model,
)

SAMPLED = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)  # every token possible


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> bitnet.Model:
    with bitnet.Model(demo_model(tmp_path_factory.mktemp("gen") / "scripted.gguf")) as m:
        yield m


@pytest.fixture(scope="module")
def random_model() -> bitnet.Model:
    with bitnet.Model(model_factory.tiny_model_with_tokenizer()) as m:
        yield m


def piece_bytes(m: bitnet.Model, ids: list[int]) -> bytes:
    tok = bitnet.Tokenizer(m.path)
    return b"".join(tok.token_to_piece(t) for t in ids)


# ---- stream == generate, and both == the ids' text -------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_stream_pieces_join_to_generate_and_to_the_ids_text(random_model: bitnet.Model, seed: int) -> None:
    pieces = list(random_model.stream("Hello world", 24, seed=seed, **SAMPLED))
    text = random_model.generate("Hello world", 24, seed=seed, **SAMPLED)
    assert "".join(pieces) == text
    assert all(pieces), "no empty pieces"
    # Independently: the same ids from the array API, their bytes decoded at once.
    prompt = random_model.tokenize("Hello world", add_bos=False)
    ids = random_model.generate_tokens(prompt, 24, seed=seed, **SAMPLED)
    if ids and ids[-1] == random_model.eos_id:
        ids = ids[:-1]
    assert text == piece_bytes(random_model, ids).decode("utf-8", errors="replace")


def test_greedy_text_of_the_script(scripted: bitnet.Model) -> None:
    assert scripted.generate(STOP_PROMPT, 50) == STOP_TEXT
    assert scripted.generate(LOOP_PROMPT, 8) == LOOP_TEXT * 2
    assert scripted.generate("x", 50) == ANSWER  # ends at <|eot_id|>, found by its text


# ---- UTF-8 -------------------------------------------------------------------------------------


def test_characters_split_over_tokens_come_out_whole(scripted: bitnet.Model) -> None:
    # é = C3 A9, € = E2 82 AC, 😀 = F0 9F 98 80: each byte is its own token.
    s = scripted.stream(UTF8_PROMPT, 50)
    assert list(s) == UTF8_PIECES
    assert s.n_tokens == 12 and s.finish_reason == "stop"  # 11 tokens of text + EOS
    assert scripted.generate(UTF8_PROMPT, 50) == "".join(UTF8_PIECES)


def test_a_character_cut_by_max_tokens_becomes_one_replacement_char(scripted: bitnet.Model) -> None:
    # 5 tokens: C3 A9 " t301" E2 82 -- the euro sign's last byte never comes.
    pieces = list(scripted.stream(UTF8_PROMPT, 5))
    assert pieces == ["é", " t301", "\ufffd"]
    assert b"\xc3\xa9 t301\xe2\x82".decode("utf-8", errors="replace") == "".join(pieces)


# ---- stop strings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "text"),
    [
        ([" t313"], " t311 t312"),  # a whole piece
        (["1 t31"], " t31"),  # spans " t311" and " t312"
        (["t314", " t312"], " t311"),  # the earliest of several
        (" t311", ""),  # at the very start; a str is one stop string
        ([" t312x"], STOP_TEXT),  # a prefix that never completes is released
        ([""], STOP_TEXT),  # an empty stop string is ignored
    ],
)
def test_stop_strings_end_the_text_before_them(scripted: bitnet.Model, stop: list[str] | str, text: str) -> None:
    assert scripted.generate(STOP_PROMPT, 50, stop=stop) == text
    s = scripted.stream(STOP_PROMPT, 50, stop=stop)
    pieces = list(s)
    assert "".join(pieces) == text and all(pieces)


def test_text_that_may_start_a_stop_string_is_held_back(scripted: bitnet.Model) -> None:
    # "1 t3129" never completes, but " t311" ends with "1" and " t311 t312"
    # with "1 t312", which could both begin it: that text waits until " t313"
    # shows it is not the stop string.
    s = scripted.stream(STOP_PROMPT, 50, stop=["1 t3129"])
    assert list(s) == [" t31", "1 t312 t313", " t314", " t315"]


def test_generation_ends_at_a_stop_string(scripted: bitnet.Model) -> None:
    s = scripted.stream(STOP_PROMPT, 50, stop=[" t313"])
    assert list(s) == [" t311", " t312"]
    assert s.finish_reason == "stop" and s.n_tokens == 3  # no token after the stop string


def test_finish_reasons(scripted: bitnet.Model) -> None:
    s = scripted.stream(STOP_PROMPT, 3)
    assert "".join(s) == " t311 t312 t313" and s.finish_reason == "length"
    s = scripted.stream(STOP_PROMPT, 50)
    assert "".join(s) == STOP_TEXT and s.finish_reason == "stop" and s.n_tokens == 6


# ---- leaving early -------------------------------------------------------------------------------------


def test_breaking_out_of_a_stream_leaves_the_model_usable(scripted: bitnet.Model) -> None:
    t0 = time.perf_counter()
    for i, _piece in enumerate(scripted.stream(LOOP_PROMPT, 1_000_000)):
        if i == 2:
            break
    # The endless generation was cancelled (not run to a million tokens) and
    # the context is free for the next call.
    assert time.perf_counter() - t0 < 60
    assert scripted.generate(STOP_PROMPT, 50) == STOP_TEXT


def test_closing_a_stream_stops_generation(scripted: bitnet.Model) -> None:
    s = scripted.stream(LOOP_PROMPT, 1_000_000)
    assert next(s) == " t400"
    s.close()
    n = s.n_tokens
    assert n < 1_000_000
    assert list(s) == [] and s.n_tokens == n
    assert scripted.generate(LOOP_PROMPT, 4) == LOOP_TEXT


@pytest.mark.parametrize("exc", [RuntimeError("consumer failed"), KeyboardInterrupt()])
def test_an_exception_in_the_consumer_leaves_the_model_usable(scripted: bitnet.Model, exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        with scripted.stream(LOOP_PROMPT, 1_000_000) as s:
            for _piece in s:
                raise exc
    assert scripted.generate(UTF8_PROMPT, 50) == "".join(UTF8_PIECES)


def test_a_stream_never_iterated_generates_nothing(scripted: bitnet.Model) -> None:
    s = scripted.stream(LOOP_PROMPT, 1_000_000)
    assert scripted.generate(STOP_PROMPT, 50) == STOP_TEXT  # not blocked by s
    assert s.n_tokens == 0
    del s


def test_bad_arguments_raise_when_the_stream_is_made(scripted: bitnet.Model) -> None:
    with pytest.raises(ValueError, match="empty"):
        scripted.stream("", 5)
    with pytest.raises(TypeError, match="temprature"):
        scripted.stream("x", 5, temprature=0.5)
    with pytest.raises(ValueError, match="max_tokens"):
        scripted.generate("x", -1)


# ---- the C callback API -------------------------------------------------------------------------------


def _run_callback(m: bitnet.Model, prompt: list[int], max_tokens: int, on_token, **sampling) -> None:
    s = Sampling(**sampling)
    tokens = np.asarray(prompt, dtype=np.int32)
    generate_with_callback(m._ctx, m._lock, tokens, max_tokens, s.make_sampler(), s.flags, on_token)


def test_callback_api_gives_the_array_apis_tokens(random_model: bitnet.Model) -> None:
    prompt = [1, 20, 30, 40]
    for seed in (5, 6):
        want = random_model.generate_tokens(prompt, 40, seed=seed, ignore_eos=True, **SAMPLED)
        got: list[int] = []
        _run_callback(random_model, prompt, 40, lambda t: got.append(t) and False, seed=seed, ignore_eos=True,
                      **SAMPLED)
        assert got == want and len(got) == 40


def test_callback_returning_true_stops_at_that_token(random_model: bitnet.Model) -> None:
    got: list[int] = []

    def on_token(t: int) -> bool:
        got.append(t)
        return len(got) == 3

    _run_callback(random_model, [1, 2, 3], 40, on_token, ignore_eos=True)
    assert got == random_model.generate_tokens([1, 2, 3], 3, ignore_eos=True)
    assert random_model.n_past == 3 + 2  # the last token handed out is not decoded


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_exception_in_the_callback_propagates(scripted: bitnet.Model, exc: BaseException) -> None:
    calls: list[int] = []

    def on_token(t: int) -> bool:
        calls.append(t)
        if len(calls) == 2:
            raise exc
        return False

    with pytest.raises(type(exc)):
        _run_callback(scripted, scripted.tokenize(LOOP_PROMPT), 1000, on_token)
    assert calls == [400, 401]  # the loop stopped at the raising call
    assert scripted.generate(LOOP_PROMPT, 4) == LOOP_TEXT


def test_callback_api_rejects_a_null_callback(random_model: bitnet.Model) -> None:
    sampler = Sampling().make_sampler()
    prompt = ffi.new("int32_t[]", [1, 2])
    status = lib.bitnet_generate_tokens_cb(random_model._ctx, sampler, prompt, 2, 4, 0, ffi.NULL, ffi.NULL)
    assert status == lib.BITNET_ERR_INVALID_ARGUMENT
    assert "bitnet_generate_tokens_cb" in ffi.string(lib.bitnet_last_error()).decode()


def test_eot_found_by_its_text_ends_generation(scripted: bitnet.Model) -> None:
    # The scripted GGUF has no eot_token_id key: <|eot_id|> is found by text.
    assert scripted.eot_id == EOT and scripted.eos_id == EOS
    ids = scripted.generate_tokens(scripted.tokenize("x"), 50)
    assert ids == [450, 451, 452, EOT]
    # ignore_eos goes on past it; a control token adds no text (as in llama.cpp)
    assert scripted.generate("x", 8, ignore_eos=True) == ANSWER * 2


def test_model_close_waits_for_a_running_stream(tmp_path: Path) -> None:
    m = bitnet.Model(demo_model(tmp_path / "m.gguf"))
    s = m.stream(LOOP_PROMPT, 200)
    assert next(s) == " t400"
    m.close()  # must not free the context under the worker thread
    assert len("".join(s)) > 0


def test_a_dropped_stream_cancels_its_worker(tmp_path: Path) -> None:
    # A context of 4096 tokens: run to the end, the endless loop would make
    # 4096 - 1 + 1 tokens; dropped after three pieces, it stops far earlier.
    with bitnet.Model(demo_model(tmp_path / "m.gguf"), n_ctx=4096) as m:
        prompt_len = len(m.prompt_tokens(LOOP_PROMPT))
        stream = m.stream(LOOP_PROMPT, 1_000_000)
        generation = stream._gen  # the worker's state outlives the stream object
        for i, _piece in enumerate(stream):
            if i == 2:
                break
        del stream, _piece  # the last references: the stream is collected and cancels its worker
        assert generation.thread is not None
        generation.thread.join(timeout=60)
        assert not generation.thread.is_alive()
        assert generation.n_tokens < 4096 - prompt_len + 1
        assert m.generate(STOP_PROMPT, 50) == STOP_TEXT


# ---- control tokens ----------------------------------------------------------------------------


def test_control_tokens_add_no_text(tmp_path: Path) -> None:
    """A generated control token (here <|im_start|>, or EOS with ignore_eos) shows
    no text, as in llama.cpp's output; the tokens around it show theirs."""
    from reference.scripted_model import B, chain_of, scripted_model

    chain = chain_of(B("k"), 311, 501, 312, EOS)
    with bitnet.Model(scripted_model(tmp_path / "ctl.gguf", chain, 450, special={501: "<|im_start|>"})) as m:
        ids = m.generate_tokens(m.tokenize("k", add_bos=False), 3)
        assert ids == [311, 501, 312]  # the control token really is generated
        assert m.generate("k", 3) == " t311 t312"
        assert "".join(m.stream("k", 3)) == " t311 t312"
        assert m.generate("k", 5, ignore_eos=True).startswith(" t311 t312 t450")  # EOS hidden too


def test_model_reports_the_threads_the_engine_runs_on() -> None:
    """n_threads as the C context resolved it: the number asked for, or the usable cores for None."""
    import os

    with bitnet.Model(n_threads=2) as m:
        assert m.n_threads == 2
    with bitnet.Model() as m:
        assert 1 <= m.n_threads <= (os.cpu_count() or 1)
