"""``bitnet convert``: Hugging Face checkpoints (and GGUF files) -> GGUF, checked end to end.

Tiny synthetic checkpoints of each kind (tests/reference/hf_checkpoints.py: hidden 256, ffn
512, 2 layers, 4 heads, 2 KV heads) are converted, loaded with ``bitnet.Model``, and their
logits compared with the numpy reference forward (tests/reference/forward.py) run on the
weights the checkpoint stands for, computed from its own tensors with transformers'
formulas (absmean ternarization of master weights; ``unpack_weights`` / ``weight_scale`` of
packed ones) and kept in Hugging Face's row order. Bounds are those of
test_engine_vs_reference.py (reference/checks.py): float outputs within float32 noise,
ternary outputs within the activation-quantization noise of a reference that quantizes
activations as the engine does.

Also: the packers are byte-identical to upstream's (gguf.quants) and to the test
reference encoders; the packed BitNet release converts to exactly the codes of the bf16
master it was packed from; tokenizer ids of converted files equal HF tokenizers' ids and
llama.cpp's golden ids (LLaMA-3 BPE, GPT-2 BPE, LLaMA-2 SentencePiece); GGUF -> GGUF
re-quantization is exact; bad inputs give errors naming the file, key or tensor.
"""
from __future__ import annotations

import json
import lzma
import sys
from pathlib import Path

import numpy as np
import pytest

from reference import checks, formats as F, gguf_io as G, hf_checkpoints as H, model_factory as MF
from reference.forward import ReferenceModel

bitnet = pytest.importorskip("bitnet")
gguf = pytest.importorskip("gguf")
tokenizers = pytest.importorskip("tokenizers")
from bitnet import _quantize_np as Q  # noqa: E402
from bitnet.convert import convert  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "tokenizer"
PROMPT = [int(t) for t in np.random.default_rng(7).integers(2, 290, 16)]
OUTTYPES = ("i2_s", "tq2_0", "tq1_0", "f16", "f32")
WTYPE = {"i2_s": F.I2_S, "tq2_0": F.TQ2_0, "tq1_0": F.TQ1_0, "f16": F.F16, "f32": F.F32}
LINEAR_NAMES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


class HFReference(ReferenceModel):
    """The reference forward whose linear weights count as ``wtype`` for the activation
    quantization (its own weights are exact float values)."""

    def __init__(self, ck, wtype, **kw):
        super().__init__(H.reference_gguf(ck), **kw)
        self._wtype = wtype

    def wtype(self, name):
        return self._wtype if _is_linear(name) else F.F32


def _is_linear(name):
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "blk" and parts[2] in LINEAR_NAMES


def reference_logits(ck, outtype, ids=PROMPT, **overrides):
    rope = {"rope": "neox"} if ck.kind.startswith("llama") else {}  # HF row order = rotate_half
    ref = HFReference(ck, WTYPE[outtype], overrides=dict(rope, **overrides))
    return ref.logits(ids, emulate_act=outtype not in ("f16", "f32"))


def bound(outtype):
    return checks.FLOAT_BOUND if outtype in ("f16", "f32") else checks.QUANT_BOUND


def engine_logits(path, ids=PROMPT):
    with bitnet.Model(str(path)) as m:
        return m.logits(ids)


def tensors_of(path):
    g = G.read(path)
    return g, {t.name: t for t in g.tensors}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("convert")


@pytest.fixture(scope="module")
def b158(work):
    """BitNet-b1.58-2B-4T layout, bf16 master weights."""
    return H.build(work / "b158-bf16", "b158")


@pytest.fixture(scope="module")
def b158_packed(work):
    """The same master weights, packed as transformers' BitNet integration stores them."""
    return H.build(work / "b158-packed", "b158", packed=True)


@pytest.fixture(scope="module")
def converted(work):
    """convert() once per (checkpoint, outtype) in this module."""
    done = {}

    def get(ck, outtype):
        key = (str(ck.dir), outtype)
        if key not in done:
            done[key] = convert(ck.dir, work / f"{ck.dir.name}-{outtype}.gguf", outtype, progress=False)
        return done[key]

    return get


# ---- the packers --------------------------------------------------------------------------


def test_packers_match_upstream_and_reference_layouts():
    """Ternary tensors pack to the same bytes as gguf.quants (upstream TQ1_0/TQ2_0) and the
    reference encoders (I2_S), and every ternary type unpacks back to its codes and scales."""
    rng = np.random.default_rng(1)
    q = rng.integers(-1, 2, (6, 768)).astype(np.int8)
    q[1, 256:512] = 0  # an all-zero block: upstream writes d = 0 there
    t = Q.Ternary(q, np.full((1, 1), np.float32(0.0371), np.float32))
    values = t.values()
    for name in ("TQ2_0", "TQ1_0", "I2_S"):
        tid = F.BY_NAME[name]
        mine = Q.encode(tid, ternary=t).tobytes()
        assert mine == F.encode(name, values.astype(np.float64)), name
        if name != "I2_S":
            assert mine == gguf.quants.quantize(values, gguf.GGMLQuantizationType(tid)).tobytes(), name
        back = Q.unpack_ternary(tid, np.frombuffer(mine, np.uint8), *q.shape)
        assert np.array_equal(back.q, q), name
        np.testing.assert_array_equal(back.values(), F.decode(name, mine, q.shape[::-1]))
    for name in ("IQ2_BN", "IQ1_BN"):  # ik_llama.cpp inputs for re-quantization
        raw = F.encode(name, values.astype(np.float64))
        back = Q.unpack_ternary(F.BY_NAME[name], np.frombuffer(raw, np.uint8), *q.shape)
        assert np.array_equal(back.q, q), name
        np.testing.assert_allclose(back.values(), F.decode(name, raw, q.shape[::-1]), rtol=1e-6)


def test_hf_unpack_matches_transformers_docstring():
    """transformers' unpack_weights docstring example (integrations/bitnet.py): the codes of a
    (2, 2) uint8 tensor are spread over 8 output rows, bits 0-1 first."""
    from bitnet._convert_hf import unpack_hf_packed

    packed = np.array([[0b10100001, 0b00011000], [0b10010000, 0b00001010]], np.uint8)
    want = [[0, -1], [-1, 1], [-1, 1], [-1, 1], [1, 0], [0, -1], [1, -1], [1, -1]]
    assert unpack_hf_packed(packed).tolist() == want
    q = np.random.default_rng(2).integers(-1, 2, (64, 8))
    assert np.array_equal(unpack_hf_packed(H.hf_pack(q)), q)


def test_safetensors_reader(b158, b158_packed, onebit):
    """The converter's safetensors reader returns what was written: BF16 checkpoints (written
    by the test, and accepted by the safetensors package itself), and F16 ones written by
    safetensors.numpy.save_file."""
    safetensors = pytest.importorskip("safetensors")
    from bitnet._convert_safetensors import SafetensorsDir

    for ck in (b158, b158_packed, onebit):
        st = SafetensorsDir(ck.dir)
        with safetensors.safe_open(str(ck.dir / "model.safetensors"), framework="numpy") as f:
            assert sorted(f.keys()) == sorted(ck.tensors) == sorted(st.names())
            for name in ck.tensors:
                assert f.get_slice(name).get_dtype() == st.dtype(name) == ck.dtypes[name]
                assert tuple(f.get_slice(name).get_shape()) == st.shape(name) == np.shape(ck.tensors[name])
        for name, a in ck.tensors.items():
            got = st.raw(name) if ck.dtypes[name] == "U8" else st.float32(name)
            np.testing.assert_array_equal(got, a, err_msg=name)


# ---- BitNet-b1.58-2B-4T layout ----------------------------------------------------------------


@pytest.mark.parametrize("outtype", OUTTYPES)
def test_b158_master_weights(b158, converted, outtype):
    path = converted(b158, outtype)
    g, t = tensors_of(path)
    assert g.get("general.architecture") == "bitnet-b1.58"
    assert g.get("bitnet-b1.58.rope.freq_base") == 500000.0
    assert g.get("general.file_type") == {"i2_s": 40, "tq2_0": 37, "tq1_0": 36, "f16": 1, "f32": 0}[outtype]
    assert "output.weight" not in t  # tied
    assert t["blk.1.ffn_down.weight"].type == WTYPE[outtype]
    assert t["token_embd.weight"].type == (F.F32 if outtype == "f32" else F.F16)
    assert t["blk.0.attn_sub_norm.weight"].type == F.F32
    ok, msg = checks.compare(engine_logits(path), reference_logits(b158, outtype), **bound(outtype))
    assert ok, msg


def test_b158_wrong_ffn_activation_is_caught(b158, converted):
    """The comparison above can fail: the same reference with SiLU instead of relu^2 is out
    of bounds (the converter's choice of arch is what makes the engine use relu^2)."""
    got = engine_logits(converted(b158, "i2_s"))
    ok, msg = checks.compare(got, reference_logits(b158, "i2_s", ffn_act="silu"), **checks.QUANT_BOUND)
    assert not ok, msg


def test_b158_packed_release_equals_master(b158, b158_packed, converted):
    """The packed uint8 + weight_scale checkpoint converts to the very codes of the bf16
    master it was packed from, with the scale 1 / weight_scale (bf16-rounded), so the
    logits agree with the master's within the activation-quantization noise."""
    p_master, p_packed = converted(b158, "i2_s"), converted(b158_packed, "i2_s")
    _, tm = tensors_of(p_master)
    _, tp = tensors_of(p_packed)
    n = 0
    for name, t in tm.items():
        if not _is_linear(name):
            assert tp[name].data == t.data, name
            continue
        a = Q.unpack_ternary(F.I2_S, np.frombuffer(t.data, np.uint8), t.shape[1], t.shape[0])
        b = Q.unpack_ternary(F.I2_S, np.frombuffer(tp[name].data, np.uint8), t.shape[1], t.shape[0])
        assert np.array_equal(a.q, b.q), name
        assert abs(b.d[0, 0] / a.d[0, 0] - 1) < 2 ** -8, name  # weight_scale is bf16
        n += 1
    assert n == 14
    ok, msg = checks.compare(engine_logits(p_packed), reference_logits(b158_packed, "i2_s"), **checks.QUANT_BOUND)
    assert ok, msg
    ok, msg = checks.compare(engine_logits(p_packed), engine_logits(p_master), **checks.QUANT_BOUND)
    assert ok, msg


def test_b158_packed_scale_is_divided(b158_packed, tmp_path):
    """BitLinear divides by weight_scale, AutoBitLinear multiplies: the converter follows
    quantization_config.linear_class (a scale read the wrong way round is far off)."""
    d = tmp_path / "auto"
    d.mkdir()
    for f in b158_packed.dir.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    cfg = dict(b158_packed.config, quantization_config=dict(b158_packed.config["quantization_config"],
                                                          linear_class="autobitlinear"))
    (d / "config.json").write_text(json.dumps(cfg))
    _, ta = tensors_of(convert(d, tmp_path / "auto.gguf", "i2_s", progress=False))
    _, tb = tensors_of(convert(b158_packed.dir, tmp_path / "bit.gguf", "i2_s", progress=False))
    name = "blk.0.attn_q.weight"
    sa = Q.unpack_ternary(F.I2_S, np.frombuffer(ta[name].data, np.uint8), 256, 256).d[0, 0]
    sb = Q.unpack_ternary(F.I2_S, np.frombuffer(tb[name].data, np.uint8), 256, 256).d[0, 0]
    ws = float(b158_packed.tensors["model.layers.0.self_attn.q_proj.weight_scale"][0])
    assert sa == np.float32(ws) and sb == np.float32(1) / np.float32(ws)


# ---- 1bitLLM bitnet_b1_58 (arch bitnet) with a SentencePiece tokenizer.model --------------------


@pytest.fixture(scope="module")
def spm_pieces():
    g = G.read(DATA / "ggml-vocab-llama-spm.gguf")
    return list(zip(g.get("tokenizer.ggml.tokens"), g.get("tokenizer.ggml.scores"), g.get("tokenizer.ggml.token_type")))


@pytest.fixture(scope="module")
def onebit(work, spm_pieces):
    return H.build(work / "bitnet-1bitllm", "bitnet", tokenizer=spm_pieces)


def golden_pairs(name):
    path = DATA / name
    texts = (path.parent / (path.name + ".inp")).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    outs = (path.parent / (path.name + ".out")).read_text(encoding="utf-8").split("\n")[: len(texts)]
    return [(t, [int(x) for x in o.split()]) for t, o in zip(texts, outs)]


def test_1bitllm_bitnet(onebit, converted):
    """Arch bitnet: weights pure {-1, 0, +1}, each scale (HF absmean) in its .scale tensor."""
    path = converted(onebit, "i2_s")
    g, t = tensors_of(path)
    assert g.get("general.architecture") == "bitnet"
    assert g.get("bitnet.rope.scaling.type") == "linear"
    w = Q.unpack_ternary(F.I2_S, np.frombuffer(t["blk.1.ffn_up.weight"].data, np.uint8), 256, 512)
    assert w.d[0, 0] == 1.0
    _, s = H.absmean_ternary(onebit.tensors["model.layers.1.mlp.up_proj.weight"])
    assert np.frombuffer(t["blk.1.ffn_up.scale"].data, "<f4")[0] == np.float32(1) / s
    ok, msg = checks.compare(engine_logits(path), reference_logits(onebit, "i2_s"), **checks.QUANT_BOUND)
    assert ok, msg


def test_1bitllm_sentencepiece_tokenizer_matches_llama_cpp(onebit, converted):
    """tokenizer.model (protobuf) -> tokenizer.ggml.*: llama.cpp's golden LLaMA-2 ids."""
    path = converted(onebit, "i2_s")
    g, _ = tensors_of(path)
    assert g.get("tokenizer.ggml.model") == "llama"
    assert g.get("tokenizer.ggml.add_bos_token") is True
    assert (g.get("tokenizer.ggml.bos_token_id"), g.get("tokenizer.ggml.eos_token_id")) == (1, 2)
    pairs = golden_pairs("ggml-vocab-llama-spm.gguf")
    with bitnet.Tokenizer(str(path)) as tok:
        bad = [(text, want, tok.tokenize(text)) for text, want in pairs if tok.tokenize(text) != want]
    assert not bad, f"{len(bad)} of {len(pairs)} differ; first: {bad[0]}"


# ---- ternary LLaMA (arch llama) ----------------------------------------------------------------

LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64}


@pytest.fixture(scope="module")
def llama(work):
    """Falcon3-1.58bit / Llama3-8B-1.58 style: packed ternary, untied lm_head, llama3 rope."""
    return H.build(work / "llama-packed", "llama", packed=True, rope_scaling=LLAMA3_SCALING)


@pytest.mark.parametrize("outtype", ["tq2_0", "f32"])
def test_llama_packed(llama, converted, outtype):
    path = converted(llama, outtype)
    g, t = tensors_of(path)
    assert g.get("general.architecture") == "llama"
    assert t["output.weight"].type == (F.F32 if outtype == "f32" else F.F16)
    hd = llama.hp["head_dim"]
    inv = 10000.0 ** (-np.arange(0, hd, 2) / hd)
    want = inv / H.llama3_inv_freq(inv, LLAMA3_SCALING)
    np.testing.assert_allclose(np.frombuffer(t["rope_freqs.weight"].data, "<f4"), want, rtol=1e-6)
    got = engine_logits(path)
    ok, msg = checks.compare(got, reference_logits(llama, outtype), **bound(outtype))
    assert ok, msg
    # without llama.cpp's q/k row permutation (NORM rope on HF's rotate_half rows) it would not match
    ok, msg = checks.compare(got, reference_logits(llama, outtype, rope="norm"), **bound(outtype))
    assert not ok, msg


def test_plain_float_llama(work, converted):
    """A LLaMA without a bitnet quantization_config keeps its float weights: f16 works, a
    ternary type is refused naming the tensor."""
    ck = H.build(work / "llama-float", "llama-float")
    ok, msg = checks.compare(engine_logits(converted(ck, "f16")), reference_logits(ck, "f16"), **checks.FLOAT_BOUND)
    assert ok, msg
    with pytest.raises(bitnet.BitNetError, match=r"blk\.0\.attn_q\.weight \(from model\.layers\.0\.self_attn\.q_proj\.weight\) is not ternary.*--outtype f16"):
        convert(ck.dir, work / "never.gguf", "i2_s", progress=False)
    assert not (work / "never.gguf").exists() and not list(work.glob(".never.gguf.tmp*"))


def test_row_length_fallback(tmp_path):
    """TQ2_0 needs rows of 256: with n_ff 384 ffn_down (rows of n_ff) is written F16, with a
    warning, and the model still computes the right logits."""
    ck = H.build(tmp_path / "ck", "b158", shape={"ffn": 384})
    with pytest.warns(UserWarning, match=r"2 linear weights written F16: .*blk\.0\.ffn_down\.weight, blk\.1\.ffn_down"):
        path = convert(ck.dir, tmp_path / "m.gguf", "tq2_0", progress=False)
    _, t = tensors_of(path)
    assert t["blk.0.ffn_down.weight"].type == F.F16 and t["blk.0.ffn_up.weight"].type == F.TQ2_0
    ref = HFReference(ck, F.TQ2_0)
    ref.wtype = lambda name: t[name].type if name in t and _is_linear(name) else F.F32
    ok, msg = checks.compare(engine_logits(path), ref.logits(PROMPT, emulate_act=True), **checks.QUANT_BOUND)
    assert ok, msg


# ---- tokenizers -------------------------------------------------------------------------------


@pytest.mark.parametrize("pre", ["llama3", "gpt2"])
def test_tokenizer_ids_match_hf(tmp_path, pre):
    hf = H.train_tokenizer(pre)
    ck = H.build(tmp_path / "ck", "b158", tokenizer=hf, n_vocab=320)  # 20 rows more than the vocabulary
    path = convert(ck.dir, tmp_path / "m.gguf", "i2_s", progress=False)
    g, _ = tensors_of(path)
    assert g.get("tokenizer.ggml.model") == "gpt2"
    assert g.get("tokenizer.ggml.pre") == {"llama3": "llama-bpe", "gpt2": "gpt-2"}[pre]
    tokens = g.get("tokenizer.ggml.tokens")
    assert len(tokens) == 320 and tokens[300] == "[PAD300]" and g.get("tokenizer.ggml.token_type")[300] == 5
    assert g.get("tokenizer.ggml.token_type")[0] == 3  # <|begin_of_text|>: control
    assert (g.get("tokenizer.ggml.bos_token_id"), g.get("tokenizer.ggml.eos_token_id")) == (0, 1)
    assert g.get("tokenizer.ggml.add_bos_token") is (pre == "llama3")  # the post-processor's template
    assert "m['content']" in g.get("tokenizer.chat_template")
    texts = H.TEXTS + ["", " leading", "trailing  ", "1234567 89", "naïve café 😀 !!!", "it's we'RE"]
    with bitnet.Tokenizer(str(path)) as tok:
        for text in texts:
            assert tok.tokenize(text) == hf.encode(text, add_special_tokens=False).ids, repr(text)
            assert tok.detokenize(tok.tokenize(text)) == text


def _hf_from_vocab_gguf(path, pre):
    g = G.read(path)
    tokens, types = g.get("tokenizer.ggml.tokens"), g.get("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in g.get("tokenizer.ggml.merges")]
    tk = tokenizers
    hf = tk.Tokenizer(tk.models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                    ignore_merges=pre == "llama3"))
    if pre == "llama3":
        hf.pre_tokenizer = tk.pre_tokenizers.Sequence([
            tk.pre_tokenizers.Split(tk.Regex(H.LLAMA3_REGEX), behavior="isolated", invert=False),
            tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = tk.decoders.ByteLevel()
    hf.add_special_tokens([tk.AddedToken(tokens[i], special=True, normalized=False)
                           for i, ty in enumerate(types) if ty == 3 or tokens[i] == "<|endoftext|>"])
    return hf


@pytest.mark.parametrize("name,pre", [("ggml-vocab-llama-bpe.gguf", "llama3"), ("ggml-vocab-gpt-2.gguf", "gpt2")])
def test_tokenizer_json_of_real_vocabularies(tmp_path, name, pre):
    """tokenizer.json files of LLaMA-3's (128256 tokens) and GPT-2's vocabularies convert to
    GGUFs that tokenize llama.cpp's golden texts to its golden ids (as HF does)."""
    src = DATA / name
    if not src.exists():
        src = tmp_path / name
        src.write_bytes(lzma.decompress((DATA / (name + ".xz")).read_bytes()))
    hf = _hf_from_vocab_gguf(src, pre)
    ck = H.build(tmp_path / "ck", "b158", tokenizer=hf,
                 shape={"hidden": 128, "ffn": 256, "heads": 2, "kv_heads": 1, "layers": 1})
    path = convert(ck.dir, tmp_path / "m.gguf", "i2_s", progress=False)
    pairs = golden_pairs(name)
    with bitnet.Tokenizer(str(path)) as tok:
        bad = [(t, want, tok.tokenize(t)) for t, want in pairs if tok.tokenize(t) != want]
    assert not bad, f"{len(bad)} of {len(pairs)} differ; first: {bad[0]}"
    assert all(hf.encode(t, add_special_tokens=False).ids == want for t, want in pairs)


# ---- GGUF -> GGUF ------------------------------------------------------------------------------


def test_requant_round_trip(b158, converted, tmp_path):
    """i2_s -> tq2_0 -> tq1_0 -> i2_s -> f32: the ternary codes never change; every file
    written from a GGUF equals (in its tensors' bytes) the one converted from the checkpoint
    where the scale is stored alike, and keeps the tokenizer and chat template."""
    direct = {o: tensors_of(converted(b158, o))[1] for o in ("i2_s", "tq2_0", "tq1_0")}
    src = converted(b158, "i2_s")
    chain = {}
    for outtype in ("tq2_0", "tq1_0", "i2_s", "f32"):
        chain[outtype] = src = convert(src, tmp_path / f"re-{outtype}.gguf", outtype, progress=False)
    for outtype in ("tq2_0", "tq1_0"):  # both store the scale as float16
        g, t = tensors_of(chain[outtype])
        assert {n: x.data for n, x in t.items()} == {n: x.data for n, x in direct[outtype].items()}, outtype
        assert g.get("general.file_type") == {"tq2_0": 37, "tq1_0": 36}[outtype]
    g, t = tensors_of(chain["i2_s"])  # back to I2_S: codes identical, scale now float16-rounded
    for name, x in direct["i2_s"].items():
        if _is_linear(name):
            a = Q.unpack_ternary(F.I2_S, np.frombuffer(x.data, np.uint8), x.shape[1], x.shape[0])
            b = Q.unpack_ternary(F.I2_S, np.frombuffer(t[name].data, np.uint8), x.shape[1], x.shape[0])
            assert np.array_equal(a.q, b.q) and b.d[0, 0] == np.float16(a.d[0, 0]), name
    g0 = G.read(converted(b158, "i2_s"))
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template", "general.name"):
        assert g.get(key) == g0.get(key), key
    ok, msg = checks.compare(engine_logits(chain["f32"]), reference_logits(b158, "f32"), **checks.FLOAT_BOUND)
    assert ok, msg


@pytest.mark.parametrize("wtype,emb", [("IQ2_BN", "F16"), ("IQ1_BN", "F16"), ("TQ1_0", "F32"), ("TQ2_0", "Q6_K")])
def test_requant_other_formats_to_i2_s(tmp_path, wtype, emb):
    """ik_llama.cpp's IQ*_BN and upstream's TQ*_0 files re-quantize to I2_S with the same
    weight values; a quantized embedding (Q6_K) is kept as it is."""
    src = MF.make_model("b158", wtype, emb)
    path = convert(src, tmp_path / "m.gguf", "i2_s", progress=False)
    _, t = tensors_of(path)
    _, t0 = tensors_of(src)
    for name, x in t0.items():
        if _is_linear(name):
            assert t[name].type == F.I2_S
            np.testing.assert_array_equal(F.decode(F.I2_S, t[name].data, x.shape), F.decode(x.type, x.data, x.shape))
    assert t["token_embd.weight"].type == (F.Q6_K if emb == "Q6_K" else F.F16)
    ok, msg = checks.compare(engine_logits(path), ReferenceModel(path).logits(PROMPT, emulate_act=True),
                             **checks.QUANT_BOUND)
    assert ok, msg


def test_requant_needs_one_scale_for_i2_s(tmp_path):
    """I2_S has one scale per tensor: TQ2_0 blocks with different scales cannot go there."""
    g = MF.build("b158", "F32", "F16")
    t = next(x for x in g.tensors if x.name == "blk.0.attn_q.weight")
    w = F.decode(F.F32, t.data, t.shape)
    w[:128] *= 2  # the first 128 rows (blocks) get twice the scale of the others
    g.tensors[g.tensors.index(t)] = G.Tensor(t.name, t.shape, F.TQ2_0, F.encode("TQ2_0", w))
    g.write(tmp_path / "two-scales.gguf")
    with pytest.raises(bitnet.BitNetError, match=r"blk\.0\.attn_q\.weight: .*I2_S holds one scale per tensor"):
        convert(tmp_path / "two-scales.gguf", tmp_path / "m.gguf", "i2_s", progress=False)
    path = convert(tmp_path / "two-scales.gguf", tmp_path / "m.gguf", "tq1_0", progress=False)  # per block: fine
    _, out = tensors_of(path)
    x = out["blk.0.attn_q.weight"]
    np.testing.assert_allclose(F.decode(F.TQ1_0, x.data, x.shape), F.f16r(w))


# ---- bad inputs ----------------------------------------------------------------------------------


def _copy(ck, dst):
    dst.mkdir()
    for f in ck.dir.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _edit_config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    for k, v in changes.items():
        if v is None:
            del cfg[k]
    (d / "config.json").write_text(json.dumps(cfg))


def _rewrite_tensors(ck, d, edit):
    tensors, dtypes = dict(ck.tensors), dict(ck.dtypes)
    edit(tensors, dtypes)
    H.write_safetensors(d / "model.safetensors", tensors, dtypes)


BAD = {
    "no config.json": (lambda d, ck: (d / "config.json").unlink(), r"no config\.json"),
    "unknown architecture": (lambda d, ck: _edit_config(d, architectures=["GPT2LMHeadModel"], model_type="gpt2"),
                             r"unknown architecture GPT2LMHeadModel"),
    "missing config key": (lambda d, ck: _edit_config(d, hidden_size=None), r"config\.json: missing 'hidden_size'"),
    "wrong activation": (lambda d, ck: _edit_config(d, hidden_act="silu"), r"hidden_act 'silu'.*relu2"),
    "config shape mismatch": (lambda d, ck: _edit_config(d, intermediate_size=768),
                              r"model\.layers\.0\.mlp\.ffn_sub_norm\.weight has shape \[512\], expected \[768\]"),
    "tensor shape mismatch": (lambda d, ck: _rewrite_tensors(ck, d, lambda t, dt: t.__setitem__(
                              "model.layers.1.self_attn.k_proj.weight", np.zeros((256, 256), np.float32))),
                              r"model\.layers\.1\.self_attn\.k_proj\.weight has shape \[256, 256\], "
                              r"expected \[128, 256\]"),
    "missing tensor": (lambda d, ck: _rewrite_tensors(ck, d, lambda t, dt: t.pop("model.layers.1.mlp.up_proj.weight")),
                       r"tensor model\.layers\.1\.mlp\.up_proj\.weight is missing"),
    "unknown tensor": (lambda d, ck: _rewrite_tensors(ck, d, lambda t, dt: (t.__setitem__("model.extra.weight",
                       np.zeros(4, np.float32)), dt.__setitem__("model.extra.weight", "F32"))),
                       r"does not know: model\.extra\.weight"),
    "no safetensors": (lambda d, ck: (d / "model.safetensors").rename(d / "pytorch_model.bin"),
                       r"no \*\.safetensors files \(found pytorch_model\.bin"),
    "truncated safetensors": (lambda d, ck: (d / "model.safetensors").write_bytes(
                              (d / "model.safetensors").read_bytes()[:-100]), r"model\.safetensors: tensor .* do not fit"),
    "no tokenizer": (lambda d, ck: (d / "tokenizer.json").unlink(), r"no tokenizer\.json or tokenizer\.model"),
    "unknown pre-tokenizer": (lambda d, ck: _edit_tokenizer(d), r"pre-tokenizer is not one the engine implements"),
    "vocab too large": (lambda d, ck: _edit_config(d, vocab_size=100), r"vocab_size 100, but model\.embed_tokens"),
}


def _edit_tokenizer(d):
    tj = json.loads((d / "tokenizer.json").read_text())
    tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\w+|\s+"
    (d / "tokenizer.json").write_text(json.dumps(tj))


@pytest.mark.parametrize("case", list(BAD))
def test_bad_checkpoints(b158, tmp_path, case):
    edit, message = BAD[case]
    d = _copy(b158, tmp_path / "ck")
    edit(d, b158)
    with pytest.raises(bitnet.BitNetError, match=message):
        convert(d, tmp_path / "out.gguf", "i2_s", progress=False)
    assert not (tmp_path / "out.gguf").exists()


def test_bad_arguments(b158, tmp_path):
    with pytest.raises(FileNotFoundError):
        convert(tmp_path / "nowhere", tmp_path / "out.gguf")
    with pytest.raises(ValueError, match="unknown outtype 'q4_0'"):
        convert(b158.dir, tmp_path / "out.gguf", "q4_0")
    (tmp_path / "x.bin").write_bytes(b"not a model")
    with pytest.raises(bitnet.BitNetError, match="neither a Hugging Face model directory nor a GGUF file"):
        convert(tmp_path / "x.bin", tmp_path / "out.gguf")
    (tmp_path / "cut.gguf").write_bytes(MF.make_model("b158", "I2_S", "F16").read_bytes()[:2000])
    with pytest.raises(bitnet.BitNetError, match=r"cut\.gguf: truncated GGUF header"):
        convert(tmp_path / "cut.gguf", tmp_path / "out.gguf")


def test_missing_gguf_package(b158, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ImportError
    with pytest.raises(bitnet.BitNetError, match=r"pip install 'libbitnet\[convert\]'"):
        convert(b158.dir, tmp_path / "out.gguf")


# ---- command line -------------------------------------------------------------------------------


def test_cli_convert(b158, tmp_path, capsys):
    from bitnet.cli import main

    out = tmp_path / "m.gguf"
    assert main(["convert", str(b158.dir), "-o", str(out), "--outtype", "tq1_0", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}: ") and "24 tensors (14 TQ1_0, 9 F32, 1 F16)" in line and line.endswith("tq1_0")
    assert main(["convert", str(tmp_path / "nowhere"), "-o", str(out)]) == 1
    assert "bitnet: error: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(b158.dir), "-o", str(out), "--outtype", "q4_0"])
    assert exc.value.code == 2
