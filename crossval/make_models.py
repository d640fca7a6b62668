"""The model files both engines run: one random ternary model per family, in every format.

The F32 file comes from tests/reference/model_factory.py (absmean-ternarised weights,
float16-exact embeddings and scales); F16, TQ1_0 and TQ2_0 are made from it by our
converter (``bitnet.convert.convert``, GGUF -> GGUF), so every format holds exactly the
same weight values and upstream llama.cpp also checks what our converter writes.
Files that upstream cannot load (the "unsupported" rows) are made the same way.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from reference import model_factory as MF  # noqa: E402  (tests/reference, needs the path above)

# Larger than model_factory's default (n_embd 256, 2 layers) so that attention mixes over
# 4 layers and GQA (8 query / 4 KV heads of 64) is exercised; n_embd and n_ff are
# multiples of 256, the TQ1_0/TQ2_0 block (upstream refuses other row lengths) and of
# Q8_K, the activation format upstream multiplies TQ weights with. F32 file: 54 MB.
SHAPE = dict(n_embd=512, n_ff=1536, n_layer=4, n_head=8, n_head_kv=4, n_vocab=1024, n_ctx=512)
SEED = 11
FAMILIES = ("bitnet", "tern-llama")      # arch `bitnet` (1bitLLM, SiLU, .scale tensors), ternary `llama`
FORMATS = ("F32", "F16", "TQ1_0", "TQ2_0")


@dataclass(frozen=True)
class ModelFile:
    family: str
    arch: str
    format: str
    path: Path
    note: str = ""


def _f32_source(family: str) -> Path:
    # cached by content key in tests/.cache/models (or $BITNET_TEST_CACHE)
    return MF.make_model(family=family, wtype="F32", emb_type="F32", seed=SEED, shape=SHAPE)


def _converted(src: Path, out: Path, outtype: str) -> Path:
    from bitnet.convert import convert

    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        with warnings.catch_warnings():
            # a fallback to F16 (row length not a multiple of the block) would mislabel the row
            warnings.filterwarnings("error", message=".*linear weights written F16")
            convert(src, out, outtype=outtype, progress=False)
    return out


def make(work_dir: Path, families: tuple[str, ...] = FAMILIES, formats: tuple[str, ...] = FORMATS) -> list[ModelFile]:
    """The compared models, F32 first in each family."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out: list[ModelFile] = []
    for fam in families:
        src = _f32_source(fam)
        for fmt in formats:
            path = src if fmt == "F32" else _converted(src, work_dir / f"{fam}-{fmt}.gguf", fmt.lower())
            note = "model_factory" if fmt == "F32" else "bitnet.convert from F32 (token_embd/output F16)"
            out.append(ModelFile(fam, MF.ARCH[fam], fmt, path, note))
    return out


def make_unsupported(work_dir: Path) -> list[ModelFile]:
    """Files upstream llama.cpp cannot run, which our engine runs (covered by golden data)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    b158 = MF.make_model(family="b158", wtype="F32", emb_type="F32", seed=SEED, shape=SHAPE)
    i2s = _converted(_f32_source("bitnet"), work_dir / "bitnet-I2_S.gguf", "i2_s")
    return [
        ModelFile("b158", MF.ARCH["b158"], "F32", b158,
                  "BitNet-b1.58-2B-4T architecture (relu(gate)^2 * up): upstream has no such arch"),
        ModelFile("bitnet", MF.ARCH["bitnet"], "I2_S", i2s,
                  "bitnet.cpp's I2_S (ggml type 36): upstream has no such type"),
    ]
