"""``Model.perplexity`` against an independent numpy computation of
llama-perplexity's method from ``Model.logits`` on the same chunks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

bitnet = pytest.importorskip("bitnet")

from reference import gguf_io as G  # noqa: E402
from reference import model_factory  # noqa: E402

TEXT = (
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
    "How vexingly quick daft zebras jump! Sphinx of black quartz, judge my vow. "
) * 3


@pytest.fixture(scope="module")
def bos_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The factory's tiny model, but asking for BOS at the start of a text."""
    g = model_factory.build(family="b158", wtype="I2_S", emb_type="F16")
    g.kv["tokenizer.ggml.add_bos_token"] = G.kv_bool(True)
    path = tmp_path_factory.mktemp("ppl") / "bos.gguf"
    g.write(path)
    return path


def reference_perplexity(m: bitnet.Model, text: str, n_ctx: int, add_bos: bool, replace_first: bool = True) -> float:
    """llama-perplexity, written out: chunks of n_ctx tokens, each chunk's first
    token BOS (when the vocabulary adds BOS), the logits of positions
    n_ctx/2 .. n_ctx-2 scored against the next token."""
    ids = m.tokenize(text, add_bos=add_bos)
    first = n_ctx // 2
    nll, count = 0.0, 0
    for c in range(len(ids) // n_ctx):
        chunk = list(ids[c * n_ctx : (c + 1) * n_ctx])
        if add_bos and replace_first:
            chunk[0] = m.bos_id
        logits = m.logits(chunk).astype(np.float64)  # one call, every row
        for j in range(first, n_ctx - 1):
            row = logits[j]
            log_z = np.logaddexp.reduce(row)
            nll -= row[chunk[j + 1]] - log_z
            count += 1
    return math.exp(nll / count)


@pytest.mark.parametrize("n_ctx", [16, 23])
def test_perplexity_equals_numpy_on_the_same_chunks(n_ctx: int) -> None:
    with bitnet.Model(model_factory.tiny_model_with_tokenizer()) as m:
        n_tokens = len(m.tokenize(TEXT, add_bos=False))
        assert n_tokens % n_ctx, "the text should leave a partial chunk to drop"
        got = m.perplexity(TEXT, n_ctx=n_ctx)
        assert got == pytest.approx(reference_perplexity(m, TEXT, n_ctx, add_bos=False), rel=1e-6)


def test_every_chunk_starts_with_bos_when_the_vocabulary_adds_bos(bos_model: Path) -> None:
    with bitnet.Model(bos_model) as m:
        got = m.perplexity(TEXT, n_ctx=16)
        assert got == pytest.approx(reference_perplexity(m, TEXT, 16, add_bos=True), rel=1e-6)
        # Sensitivity: leaving chunks 2.. without BOS gives another number.
        other = reference_perplexity(m, TEXT, 16, add_bos=True, replace_first=False)
        assert abs(other / got - 1) > 1e-3


def test_result_details() -> None:
    from bitnet.perplexity import compute_perplexity

    with bitnet.Model(model_factory.tiny_model_with_tokenizer()) as m:
        r = compute_perplexity(m, TEXT, 16)
        n_tokens = len(m.tokenize(TEXT, add_bos=False))
        assert (r.n_ctx, r.n_tokens, r.n_chunks) == (16, n_tokens, n_tokens // 16)
        assert r.n_scored == r.n_chunks * (16 - 1 - 8)
        assert r.ppl == pytest.approx(math.exp(r.nll))


@pytest.mark.parametrize("which", ["tiny byte tokens", "default model BPE"])
def test_bits_per_byte_count_the_text_of_the_scored_tokens(which: str) -> None:
    """Bits per byte: the summed NLL in bits over the bytes that the scored
    tokens spell, counted here by detokenizing each chunk's scored half to
    bytes. The tiny vocabulary spells "\u2581" with three byte tokens, so a
    half can start inside a character; the default model's BPE has pieces of
    several bytes, so counting tokens instead of bytes fails."""
    from bitnet.perplexity import compute_perplexity

    n_ctx, first = 16, 8
    path = model_factory.tiny_model_with_tokenizer() if which.startswith("tiny") else bitnet.default_model_path()
    with bitnet.Model(path) as m, bitnet.Tokenizer(path) as tok:
        r = compute_perplexity(m, TEXT, n_ctx)
        ids = tok.tokenize(TEXT, add_bos=tok.add_bos)
        scored_bytes = sum(len(tok.detokenize_bytes(ids[c * n_ctx + first + 1 : (c + 1) * n_ctx]))
                           for c in range(r.n_chunks))
    assert 0 < r.scored_bytes == scored_bytes
    assert r.bits_per_byte == pytest.approx(r.nll * r.n_scored / math.log(2) / scored_bytes, rel=1e-12)


def test_default_chunk_is_the_context_when_smaller_than_512(capsys: pytest.CaptureFixture[str]) -> None:
    with bitnet.Model(model_factory.tiny_model_with_tokenizer(), n_ctx=20) as m:
        assert m.perplexity(TEXT * 2, progress=True) == pytest.approx(m.perplexity(TEXT * 2, n_ctx=20))
    assert "perplexity" in capsys.readouterr().err  # the tqdm bar


def test_too_short_texts_and_too_large_chunks_are_value_errors() -> None:
    with bitnet.Model(model_factory.tiny_model_with_tokenizer(), n_ctx=64) as m:
        with pytest.raises(ValueError, match="at least 128 tokens"):
            m.perplexity("short text", n_ctx=64)
        with pytest.raises(ValueError, match="larger than the model's context"):
            m.perplexity(TEXT, n_ctx=128)
        with pytest.raises(ValueError, match="at least 3"):
            m.perplexity(TEXT, n_ctx=2)
