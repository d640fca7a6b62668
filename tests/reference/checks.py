"""Comparison rules shared by the engine tests and the tests of those rules.

Engine vs our reference (tests/test_engine_vs_reference.py)
-----------------------------------------------------------
Float formats (F32/F16/BF16 weights and embeddings): the engine computes in float32, the
reference in float64 on the same weight values; the only difference is float32 rounding
(relative ~1e-6 per operation), so every row must have cosine >= 0.9999 and
max|Δ| <= 0.01 * std(reference logits). Measured: float32-vs-float64 reference max|Δ| <=
1e-5 * std.

Quantized formats: the engine quantizes each matmul input to int8 like the format's
reference implementation; the reference emulates the same (``emulate_act=True``).
The integer dot products are exact, so the engine and the reference differ only where
their float32 / float64 activations round to different int8 codes. An element x with
step d = scale/127 rounds differently only when x/d lies within the float32 noise
(|x/d| * ~1e-6 <= 127e-6) of a half-integer, so a flip is rare (~1e-4 per element);
but each flip moves that activation by one full step d (at most max|x|/127 of the block:
half a step of rounding error on each side), and the change propagates through the
later layers and positions, where it can cause further flips. So the bound cannot be a
per-element half-step bound; it is the size of such flip cascades. Measured with
model_factory models (16-token prompt, every ternary family x format): a float32
emulating reference vs the float64 one had no flip at all in most cases and in the
worst case min row cosine 0.99947 and max|Δ| 0.101 * std (float llama in a lossy ternary
format: 0.998 / 0.235 * std, not used). Chosen bound, ~3x margin on max|Δ|:
cosine >= 0.998 per row and max|Δ| <= 0.30 * std.
A real bug is far outside it (measured on the same models): SiLU instead of relu^2 (or
the reverse) gives cosine 0.57..0.92 and max|Δ| 1.4..3.2 * std; the wrong rope kind
(NEOX vs NORM) cosine -0.04..0.47, max|Δ| >= 3.4 * std; test_reference_vs_golden.py
checks that these broken references fail and a float32 reference passes.
Leaving the activation quantization out entirely (cosine ~0.999, max|Δ| ~0.09-0.18 *
std) is not reliably caught by this bound; the golden tests against ik_llama.cpp and
llama.cpp (exact to 1e-4 at the first position, see tests/data/golden/README.md) are what
pin the quantization down.
"""
from __future__ import annotations

import numpy as np

FLOAT_TYPES = ("F32", "F16", "BF16")
FLOAT_BOUND = dict(min_cos=0.9999, max_rel=0.01)
QUANT_BOUND = dict(min_cos=0.998, max_rel=0.30)


def row_cosines(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def compare(got, ref, min_cos, max_rel):
    """Return (ok, message) comparing logits ``got`` against reference ``ref``."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return False, f"shape {got.shape} != {ref.shape}"
    if not np.all(np.isfinite(got)):
        return False, "non-finite logits"
    cos = row_cosines(got, ref).min()
    rel = np.abs(got - ref).max() / ref.std()
    ok = bool(cos >= min_cos and rel <= max_rel)
    return ok, f"min row cosine {cos:.6f} (>= {min_cos}), max|Δ|/std {rel:.4f} (<= {max_rel})"


def bound_for(wtype, emb_type):
    return FLOAT_BOUND if (wtype in FLOAT_TYPES and emb_type in FLOAT_TYPES) else QUANT_BOUND


def greedy_prefix(a, b):
    """Length of the common prefix of two id lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# engine vs golden data (tests/test_golden.py; derivation in its docstring)
GOLDEN_FLOAT = dict(min_cos=0.99999, max_abs=0.5, near_tie=0.05)
GOLDEN_QUANT = dict(min_cos=0.999, max_abs=6.0, near_tie=4.0)
GOLDEN_BOUNDS = {"F32": GOLDEN_FLOAT, "F16": GOLDEN_FLOAT, "IQ2_BN": GOLDEN_QUANT, "IQ1_BN": GOLDEN_QUANT,
                 "TQ1_0": GOLDEN_QUANT, "TQ2_0": GOLDEN_QUANT}
