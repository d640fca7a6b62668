"""The sampler (core_c/sampler.c) through the C API: greedy, temperature,
top-k, top-p, min-p, repetition penalty and the seeded RNG.

Distributions are checked against the softmax computed here in numpy, with
draws enough that a wrong filter or temperature is far outside the tolerance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

bitnet = pytest.importorskip("bitnet")
from bitnet._lib import check, ffi, lib  # noqa: E402

from reference import model_factory  # noqa: E402

LOGITS = np.log(np.array([0.05, 0.10, 0.15, 0.30, 0.40], dtype=np.float32))


def make_sampler(**params: float) -> object:
    p = ffi.new("bitnet_sampler_params *")
    lib.bitnet_sampler_params_init(p)
    for key, value in params.items():
        setattr(p, key, value)
    out = ffi.new("bitnet_sampler **")
    check(lib.bitnet_sampler_create(p, out))
    return ffi.gc(out[0], lib.bitnet_sampler_free)


def draws(sampler: object, logits: np.ndarray, n: int) -> Iterator[int]:
    buf = ffi.from_buffer("float[]", np.ascontiguousarray(logits, dtype=np.float32))
    tok = ffi.new("int32_t *")
    for _ in range(n):
        check(lib.bitnet_sampler_sample(sampler, buf, len(logits), tok))
        yield tok[0]


def frequencies(n: int = 20000, logits: np.ndarray = LOGITS, **params: float) -> np.ndarray:
    counts = np.bincount(list(draws(make_sampler(**params), logits, n)), minlength=len(logits))
    return counts / n


def off() -> dict[str, float]:
    """All filters off: a plain draw from softmax(logits / temperature)."""
    return dict(top_k=0, top_p=1.0, min_p=0.0)


def test_greedy_takes_the_first_maximum() -> None:
    logits = np.array([1.0, 3.0, 3.0, 2.0], dtype=np.float32)
    assert set(draws(make_sampler(temperature=0.0), logits, 20)) == {1}


def test_temperature_one_draws_from_the_softmax() -> None:
    freq = frequencies(temperature=1.0, **off())
    np.testing.assert_allclose(freq, [0.05, 0.10, 0.15, 0.30, 0.40], atol=0.015)


def test_temperature_sharpens_and_flattens() -> None:
    for t in (0.5, 2.0):
        want = np.exp(LOGITS / t) / np.exp(LOGITS / t).sum()
        np.testing.assert_allclose(frequencies(temperature=t, **off()), want, atol=0.015)


def test_top_k_keeps_the_k_best() -> None:
    freq = frequencies(temperature=1.0, top_k=2, top_p=1.0, min_p=0.0)
    np.testing.assert_allclose(freq, [0, 0, 0, 0.30 / 0.70, 0.40 / 0.70], atol=0.015)


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    # 0.40 + 0.30 = 0.70 >= 0.6: two tokens survive
    freq = frequencies(temperature=1.0, top_k=0, top_p=0.6, min_p=0.0)
    np.testing.assert_allclose(freq, [0, 0, 0, 0.30 / 0.70, 0.40 / 0.70], atol=0.015)


def test_min_p_drops_tokens_below_a_fraction_of_the_best() -> None:
    # p >= 0.3 * 0.40 = 0.12 keeps 0.15, 0.30, 0.40
    freq = frequencies(temperature=1.0, top_k=0, top_p=1.0, min_p=0.3)
    np.testing.assert_allclose(freq, np.array([0, 0, 0.15, 0.30, 0.40]) / 0.85, atol=0.015)


def test_repetition_penalty_discourages_seen_tokens() -> None:
    s = make_sampler(temperature=0.0, repeat_penalty=4.0, repeat_last_n=8)
    logits = np.array([2.0, 1.0, 0.5], dtype=np.float32)
    assert next(draws(s, logits, 1)) == 0
    lib.bitnet_sampler_accept(s, 0)  # 2.0 / 4 = 0.5 < 1.0
    assert next(draws(s, logits, 1)) == 1
    lib.bitnet_sampler_reset(s, 1)  # forgetting the history restores greedy
    assert next(draws(s, logits, 1)) == 0


def penalised(logits: np.ndarray, window: list[int], repeat: float, frequency: float, presence: float) -> np.ndarray:
    """The reference: llama.cpp's penalties, each distinct token of the window once."""
    out = logits.astype(np.float32).copy()
    for token in set(window):
        v = out[token]
        v = v / np.float32(repeat) if v > 0 else v * np.float32(repeat)
        out[token] = v - np.float32(window.count(token) * np.float32(frequency) + np.float32(presence))
    return out


@pytest.mark.parametrize(
    ("frequency", "presence", "want"),
    [
        (0.3, 0.0, 0),   # 3.0 - 3 x 0.3 = 2.1 > 2.0
        (0.4, 0.0, 1),   # 3.0 - 3 x 0.4 = 1.8 < 2.0
        (0.0, 0.9, 0),   # 3.0 - 0.9 = 2.1
        (0.0, 1.1, 1),   # 3.0 - 1.1 = 1.9
        (0.2, 0.5, 1),   # 3.0 - 0.6 - 0.5 = 1.9
        (-0.5, -1.0, 0),  # negative values encourage repeats
    ],
)
def test_frequency_and_presence_penalties_subtract_per_occurrence_and_once(frequency: float, presence: float,
                                                                           want: int) -> None:
    s = make_sampler(temperature=0.0, frequency_penalty=frequency, presence_penalty=presence, repeat_last_n=8)
    for token in (0, 0, 0):
        lib.bitnet_sampler_accept(s, token)
    assert next(draws(s, np.array([3.0, 2.0, 1.0], dtype=np.float32), 1)) == want


def test_penalties_count_only_the_last_repeat_last_n_tokens() -> None:
    s = make_sampler(temperature=0.0, frequency_penalty=0.4, repeat_last_n=2)
    for token in (0, 0, 0, 0):  # four accepted, the window holds two: 3.0 - 2 x 0.4 = 2.2
        lib.bitnet_sampler_accept(s, token)
    assert next(draws(s, np.array([3.0, 2.0, 1.0], dtype=np.float32), 1)) == 0


def test_all_penalties_together_draw_from_the_numpy_reference() -> None:
    window = [4, 4, 3, 0, 4, 2]
    params = dict(repeat_penalty=1.3, frequency_penalty=0.2, presence_penalty=0.3, repeat_last_n=16)
    s = make_sampler(temperature=1.0, seed=11, **off(), **params)
    for token in window:
        lib.bitnet_sampler_accept(s, token)
    n = 20000
    freq = np.bincount(list(draws(s, LOGITS, n)), minlength=len(LOGITS)) / n
    ref = penalised(LOGITS, window, 1.3, 0.2, 0.3).astype(np.float64)
    want = np.exp(ref - ref.max()) / np.exp(ref - ref.max()).sum()
    np.testing.assert_allclose(freq, want, atol=0.015)


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    a = list(draws(make_sampler(temperature=1.0, seed=7, **off()), LOGITS, 200))
    b = list(draws(make_sampler(temperature=1.0, seed=7, **off()), LOGITS, 200))
    c = list(draws(make_sampler(temperature=1.0, seed=8, **off()), LOGITS, 200))
    assert a == b
    assert a != c


def test_nan_logits_never_win() -> None:
    logits = np.array([np.nan, 0.0, np.nan], dtype=np.float32)
    assert set(draws(make_sampler(temperature=0.0), logits, 5)) == {1}
    assert set(draws(make_sampler(temperature=1.0, **off()), logits, 50)) == {1}


def test_invalid_parameters_are_rejected() -> None:
    p = ffi.new("bitnet_sampler_params *")
    lib.bitnet_sampler_params_init(p)
    p.repeat_penalty = 0.0
    out = ffi.new("bitnet_sampler **")
    with pytest.raises(bitnet.BitNetError, match="invalid sampler parameters"):
        check(lib.bitnet_sampler_create(p, out))
    lib.bitnet_sampler_params_init(p)
    p.frequency_penalty = float("nan")
    with pytest.raises(bitnet.BitNetError, match="frequency_penalty nan"):
        check(lib.bitnet_sampler_create(p, out))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sampler") / "tiny.gguf"
    model_factory.build(family="tern-llama", wtype="F32").write(path)
    return path


def test_generate_tokens_is_reproducible_with_a_seed(tiny_model: Path) -> None:
    with bitnet.Model(tiny_model, n_ctx=64) as m:
        kw = dict(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, ignore_eos=True)
        a = m.generate_tokens([5, 6, 7], 24, seed=123, **kw)
        b = m.generate_tokens([5, 6, 7], 24, seed=123, **kw)
        c = m.generate_tokens([5, 6, 7], 24, seed=124, **kw)
        assert a == b
        assert a != c


def test_generate_tokens_greedy_equals_argmax_of_logits(tiny_model: Path) -> None:
    with bitnet.Model(tiny_model, n_ctx=64) as m:
        prompt = [5, 6, 7]
        out = m.generate_tokens(prompt, 8, ignore_eos=True)
        logits = m.logits(prompt + out)
        assert out == [int(i) for i in logits[len(prompt) - 1 : -1].argmax(axis=1)]


def test_generate_text_round_trips_through_the_tokenizer(tiny_model: Path) -> None:
    """Model.generate = tokenize -> generate_tokens -> joined pieces, with the model's own vocabulary.

    (Exact round trips on real vocabularies are tests/test_tokenizer*.py's job; this
    test vocabulary has byte tokens and no "▁" piece.)"""
    with bitnet.Model(tiny_model, n_ctx=64) as m:
        prompt = "Hello"
        ids = m.tokenize(prompt, add_bos=False)
        assert ids and m.tokenize(prompt, add_bos=True)[1:] == ids
        new_ids = m.generate_tokens(ids, 6)
        text = m.generate(prompt, 6)
        # a continuation is its pieces joined: SentencePiece's leading space is kept
        with bitnet.Tokenizer(tiny_model) as tok:
            pieces = b"".join(tok.token_to_piece(t) for t in new_ids if t != m.eos_id)
        assert text == pieces.decode("utf-8", errors="replace")
