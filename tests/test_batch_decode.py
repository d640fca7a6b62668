"""bitnet_decode_batch: several sequences in one forward pass (issue 7).

The contract: a token's logits depend only on its own sequence, bit for bit.
Kernels compute every (weight row, token) dot product on its own
(core_c/kernels.h), activations are quantized per token, and norms, RoPE and
attention are per token, so batching sequences together must not change a
single bit. Every check here is np.array_equal against each sequence run
alone through bitnet_decode (bitnet.Model.logits) in a context of its own.
"""
import numpy as np
import pytest

from reference import model_factory as MF

bitnet = pytest.importorskip("bitnet", reason="the bitnet engine package is not importable (not built yet?)")
from bitnet._lib import ffi, lib  # noqa: E402
from bitnet.batch import BatchContext  # noqa: E402

N_CTX = 64
COMBOS = [("b158", "I2_S", "F16", None), ("b25", "IQ2_BN", "F16", "Q8_0"), ("tern-llama", "TQ2_0", "Q4_K", "Q6_K")]


def _id(c):
    return "-".join(x for x in c if x)


def _seqs(rng, prompt_lens, n_decode):
    return [[int(t) for t in rng.integers(3, 512, p + n_decode)] for p in prompt_lens]


def _reference(path, seqs, kernel, n_threads, kv_type):
    """Each sequence alone: teacher-forced logits of every position via bitnet_decode."""
    with bitnet.Model(str(path), n_ctx=N_CTX, n_threads=n_threads, kernel=kernel, kv_type=kv_type) as m:
        return [m.logits(s) for s in seqs]


def _schedule(rng, seqs, prompt_lens, starts):
    """Batches as a server would build them: a sequence joins at its start
    step with its prompt (whole or in chunks), then adds one token per step;
    the items of different sequences are interleaved at random (each
    sequence's own items stay in order). Yields (tokens, seq_ids, want,
    positions)."""
    done = [0] * len(seqs)
    step = 0
    while any(d < len(s) for d, s in zip(done, seqs)):
        per_seq = []
        for s, toks in enumerate(seqs):
            if step < starts[s] or done[s] >= len(toks):
                continue
            if done[s] < prompt_lens[s]:
                n = int(rng.integers(1, prompt_lens[s] - done[s] + 1))
            else:
                n = 1
            items = [(s, done[s] + i) for i in range(n)]
            done[s] += n
            per_seq.append(items)
        step += 1
        if not per_seq:
            continue
        merged = []
        while per_seq:
            k = int(rng.integers(len(per_seq)))
            merged.append(per_seq[k].pop(0))
            if not per_seq[k]:
                per_seq.pop(k)
        # logits for a prompt's last token and every decode token (what a
        # server samples from), plus a few prompt tokens at random
        want = [int(p >= prompt_lens[s] - 1 or rng.random() < 0.2) for s, p in merged]
        yield ([seqs[s][p] for s, p in merged], [s for s, _ in merged], want, merged)


def _run_schedule(b, rng, seqs, prompt_lens, starts, ref):
    n_checked = 0
    for tokens, seq_ids, want, pos in _schedule(rng, seqs, prompt_lens, starts):
        rows = b.decode(tokens, seq_ids, want)
        assert rows.shape == (sum(want), b.n_vocab)
        r = 0
        for (s, p), w in zip(pos, want):
            if not w:
                continue
            expect = ref[s][p]
            assert np.array_equal(rows[r], expect), (
                f"sequence {s} position {p}: max|Δ| = {np.abs(rows[r].astype(np.float64) - expect).max():g}")
            r += 1
            n_checked += 1
    for s, toks in enumerate(seqs):
        assert b.seq_length(s) == len(toks)
    return n_checked


@pytest.mark.parametrize("kv_type", ["f16", "f32"])
@pytest.mark.parametrize("kernel,n_threads", [("scalar", 1), ("scalar", 2), ("auto", 1), ("auto", 2)])
@pytest.mark.parametrize("combo", COMBOS, ids=[_id(c) for c in COMBOS])
def test_batched_sequences_equal_each_alone(combo, kernel, n_threads, kv_type):
    path = MF.make_model(*combo)
    rng = np.random.default_rng(7)
    prompt_lens = [9, 1, 23, 4]
    seqs = _seqs(rng, prompt_lens, 6)
    ref = _reference(path, seqs, kernel, n_threads, kv_type)
    # n_batch 7 splits the larger batches into several forward passes
    for n_batch in (None, 7):
        with BatchContext(path, 4, n_ctx=N_CTX, n_threads=n_threads, n_batch=n_batch, kernel=kernel,
                          kv_type=kv_type) as b:
            assert b.n_seq == 4
            n = _run_schedule(b, np.random.default_rng(3), seqs, prompt_lens, [0, 0, 1, 2], ref)
            assert n >= 4 * 6


def test_sixteen_sequences_and_slot_reuse():
    path = MF.make_model("b158", "TQ2_0", "Q6_K", None)
    rng = np.random.default_rng(5)
    prompt_lens = [int(x) for x in rng.integers(1, 12, 16)]
    seqs = _seqs(rng, prompt_lens, 4)
    ref = _reference(path, seqs, "auto", 2, "f16")
    with BatchContext(path, 16, n_ctx=N_CTX, n_threads=2) as b:
        _run_schedule(b, np.random.default_rng(1), seqs, prompt_lens, [i % 3 for i in range(16)], ref)
        # Free slots 3 and 11 and start new requests in them while the others go on.
        new = _seqs(np.random.default_rng(9), [5, 2], 3)
        new_ref = _reference(path, new, "auto", 2, "f16")
        for slot in (3, 11):
            b.seq_reset(slot)
            assert b.seq_length(slot) == 0
        got = b.decode(new[0][:5] + new[1][:2] + [seqs[0][0]], [3] * 5 + [11] * 2 + [0], [0, 0, 0, 0, 1, 0, 1, 1])
        assert np.array_equal(got[0], new_ref[0][4]) and np.array_equal(got[1], new_ref[1][1])
        # seq 0 got one more token: its logits are those of seqs[0] + [seqs[0][0]] alone
        with bitnet.Model(str(path), n_ctx=N_CTX, n_threads=2) as m:
            assert np.array_equal(got[2], m.logits(seqs[0] + [seqs[0][0]])[-1])
        assert b.seq_length(0) == len(seqs[0]) + 1 and b.seq_length(1) == len(seqs[1])


def _decode_status(ctx, tokens, seq_ids, want=None, out=True, n_vocab=512):
    tok = np.asarray(tokens, dtype=np.int32)
    seq = np.asarray(seq_ids, dtype=np.int32)
    w = None if want is None else np.asarray(want, dtype=np.int8)
    buf = np.zeros((len(tokens), n_vocab), dtype=np.float32)
    st = lib.bitnet_decode_batch(
        ctx, ffi.cast("int32_t *", ffi.from_buffer(tok)), ffi.cast("int32_t *", ffi.from_buffer(seq)),
        ffi.NULL if w is None else ffi.cast("int8_t *", ffi.from_buffer(w)), len(tokens),
        ffi.cast("float *", ffi.from_buffer(buf)) if out else ffi.NULL)
    return st, ffi.string(lib.bitnet_context_last_error(ctx)).decode(), buf


def test_errors_name_the_item_and_change_no_sequence():
    path = MF.make_model("b158", "I2_S", "F16", None)
    seqs = _seqs(np.random.default_rng(2), [6, 3, 14], 0)
    ref = _reference(path, seqs, "auto", 1, "f16")
    with BatchContext(path, 3, n_ctx=16, n_threads=1) as b:
        ctx = b._ctx
        b.decode(seqs[0][:5] + seqs[1][:2] + seqs[2][:13], [0] * 5 + [1] * 2 + [2] * 13, [0] * 20)
        before = [b.seq_length(s) for s in range(3)]
        assert before == [5, 2, 13]
        bad = [
            # (tokens, seq_ids, want, out, status, message)
            ([7, 8], [0, 3], None, True, lib.BITNET_ERR_INVALID_ARGUMENT, "item 1: sequence id 3 is out of range [0, 3)"),
            ([7, 8], [1, -1], None, True, lib.BITNET_ERR_INVALID_ARGUMENT, "item 1: sequence id -1"),
            ([7, 512, 9], [0, 1, 2], None, True, lib.BITNET_ERR_INVALID_ARGUMENT, "item 1: token id 512 (sequence 1)"),
            ([7, -2], [0, 1], None, True, lib.BITNET_ERR_INVALID_ARGUMENT, "item 1: token id -2"),
            # seq 2 holds 13 of 16: the 4th new item overflows, after items of other sequences
            ([7, 8, 9, 10, 11, 12], [0, 2, 2, 1, 2, 2], None, True, lib.BITNET_ERR_CONTEXT_FULL,
             "item 5: sequence 2 is full: it holds 16 tokens, 3 of them from this batch"),
            ([7, 8], [0, 1], [0, 1], False, lib.BITNET_ERR_INVALID_ARGUMENT, "1 items ask for logits but logits_out is NULL"),
        ]
        for tokens, seq_ids, want, out, status, msg in bad:
            st, err, _ = _decode_status(ctx, tokens, seq_ids, want, out)
            assert st == status, (tokens, seq_ids, err)
            assert msg in err and err.startswith("bitnet_decode_batch: ")
            assert msg in ffi.string(lib.bitnet_last_error()).decode()
            assert [b.seq_length(s) for s in range(3)] == before
        st, _, _ = _decode_status(ctx, [1], [0], None, True)  # seq 0 is now seqs[0][:5] + [1]
        assert st == 0
        st, err, _ = _decode_status(ctx, [], [], None, True)
        assert st == lib.BITNET_ERR_INVALID_ARGUMENT and "no tokens" in err
        # After the failures the sequences go on exactly as if nothing had happened.
        got = b.decode([seqs[0][5], seqs[2][13], seqs[1][2]], [0, 2, 1])
        assert np.array_equal(got[1], ref[2][13]) and np.array_equal(got[2], ref[1][2])
        with bitnet.Model(str(path), n_ctx=16, n_threads=1) as m:
            assert np.array_equal(got[0], m.logits(seqs[0][:5] + [1, seqs[0][5]])[-1])
        assert [b.seq_length(s) for s in range(3)] == [7, 3, 14]
        assert lib.bitnet_seq_length(ctx, 3) == -1 and lib.bitnet_seq_length(ctx, -1) == -1
        assert lib.bitnet_seq_reset(ctx, 3) == lib.BITNET_ERR_INVALID_ARGUMENT
        assert "sequence id 3 is out of range" in ffi.string(lib.bitnet_context_last_error(ctx)).decode()
        with pytest.raises(bitnet.BitNetError, match="item 0: sequence id 9"):
            b.decode([1], [9])
        b.reset()
        assert [b.seq_length(s) for s in range(3)] == [0, 0, 0]


def test_sequence_zero_is_bitnet_decode_sequence():
    """bitnet_decode, bitnet_context_logits and n_past keep meaning sequence 0."""
    path = MF.make_model("b158", "I2_S", "F16", None)
    seqs = _seqs(np.random.default_rng(4), [5, 7], 2)
    ref = _reference(path, seqs, "auto", 1, "f16")
    V = 512
    with BatchContext(path, 2, n_ctx=N_CTX, n_threads=1) as b:
        ctx = b._ctx
        assert lib.bitnet_context_logits(ctx) == ffi.NULL
        tok = np.asarray(seqs[0][:5], dtype=np.int32)
        assert lib.bitnet_decode(ctx, ffi.cast("int32_t *", ffi.from_buffer(tok)), 5, ffi.NULL) == 0
        got = np.frombuffer(ffi.buffer(lib.bitnet_context_logits(ctx), V * 4), dtype=np.float32)
        assert np.array_equal(got, ref[0][4])
        # a batch whose last seq-0 item has logits updates bitnet_context_logits
        rows = b.decode(seqs[1][:7] + [seqs[0][5]], [1] * 7 + [0], [0] * 6 + [1, 1])
        assert np.array_equal(rows[0], ref[1][6]) and np.array_equal(rows[1], ref[0][5])
        got = np.frombuffer(ffi.buffer(lib.bitnet_context_logits(ctx), V * 4), dtype=np.float32)
        assert np.array_equal(got, ref[0][5])
        assert lib.bitnet_context_n_past(ctx) == 6 and b.seq_length(1) == 7
        # ... one without them leaves none (rather than stale ones)
        b.decode([seqs[0][6]], [0], [0])
        assert lib.bitnet_context_logits(ctx) == ffi.NULL
        b.seq_reset(1)
        assert lib.bitnet_context_n_past(ctx) == 7 and b.seq_length(1) == 0
        b.seq_reset(0)
        assert lib.bitnet_context_n_past(ctx) == 0 and lib.bitnet_context_logits(ctx) == ffi.NULL


def test_context_params():
    path = MF.make_model("b158", "I2_S", "F16", None)
    with bitnet.Model(str(path), n_ctx=16) as m:
        assert lib.bitnet_context_n_seq_max(m._ctx) == 1  # the default
    with pytest.raises(bitnet.BitNetError, match="n_seq_max 5000 out of range"):
        BatchContext(path, 5000, n_ctx=16)
    with pytest.raises(ValueError):
        BatchContext(path, 0)
