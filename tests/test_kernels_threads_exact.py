"""Every kernel variant and every thread count computes the same numbers.

The exactness contract (core_c/kernels.h): a SIMD variant returns bit for bit
what the scalar reference returns, and the thread pool only splits rows and
(token, head) pairs, never a sum. So the logits of a whole forward pass,
prefill and decode, over every weight format and both KV cache types, must be
identical (np.array_equal, not allclose) between
  - the scalar kernels on one thread (the reference), and
  - the default variant of this CPU on 1, 2 and 3 threads, and the scalar
    kernels on 3 threads.
The per-kernel checks on random data live in tests/c/test_kernels_*.c; this
test shows the engine wires them up right (strides, chunk edges, attention
over the cache).
"""
import numpy as np
import pytest

from reference import model_factory as MF

bitnet = pytest.importorskip("bitnet", reason="the bitnet engine package is not importable (not built yet?)")

# (family, weight type, embedding type, output type): every weight format once,
# and the quantized embedding/output formats converters write.
COMBOS = [
    ("b158", "I2_S", "F16", None),
    ("b158", "TQ2_0", "Q6_K", None),
    ("bitnet", "TQ1_0", "Q6_K", None),
    ("b25", "IQ2_BN", "F16", "Q8_0"),
    ("b25", "IQ1_BN", "Q6_K", None),
    ("tern-llama", "TQ2_0", "Q4_K", "Q6_K"),
    ("llama", "F32", "F32", None),
    ("llama", "F16", "F16", None),
    ("llama", "BF16", "BF16", None),
    ("llama", "Q8_0", "Q8_0", None),
]
PROMPT = [int(t) for t in np.random.default_rng(11).integers(3, 512, 37)]


def _id(c):
    return "-".join(x for x in c if x)


def _run(path, kernel, n_threads, kv_type):
    with bitnet.Model(str(path), n_ctx=64, n_threads=n_threads, kernel=kernel, kv_type=kv_type) as m:
        assert m.kernel == kernel or kernel == "auto"
        return m.logits(PROMPT)


@pytest.mark.parametrize("kv_type", ["f16", "f32"])
@pytest.mark.parametrize("combo", COMBOS, ids=[_id(c) for c in COMBOS])
def test_variants_and_threads_are_bit_identical(combo, kv_type):
    fam, wt, emb, out = combo
    path = MF.make_model(fam, wt, emb, out)
    ref_prefill = _run(path, "scalar", 1, kv_type)
    assert np.isfinite(ref_prefill).all()
    for kernel, threads in [("auto", 1), ("auto", 2), ("auto", 3), ("scalar", 3)]:
        got = _run(path, kernel, threads, kv_type)
        diff = np.abs(got.astype(np.float64) - ref_prefill).max()
        assert np.array_equal(got, ref_prefill), f"kernel={kernel} threads={threads}: max|Δ| = {diff:g}"


def test_unknown_or_unavailable_kernel_is_a_clear_error():
    path = MF.make_model("b158", "I2_S", "F16", None)
    with pytest.raises(bitnet.BitNetError, match="unknown kernel variant 'sse9'"):
        bitnet.Model(str(path), kernel="sse9")
    info = bitnet.system_info()
    for variant in ("neon", "wasm_simd", "avx512", "avx2"):
        if variant not in info.split(";")[0]:
            with pytest.raises(bitnet.BitNetError, match="cannot run on this CPU"):
                bitnet.Model(str(path), kernel=variant)
