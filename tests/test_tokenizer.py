"""The C tokenizer (bitnet.Tokenizer) against llama.cpp's golden pairs and
against Hugging Face ``tokenizers`` itself.

- Golden: tests/data/tokenizer/ggml-vocab-{llama-bpe,llama-spm}.gguf with
  llama.cpp's .inp/.out pairs: every text gives exactly the expected ids.
- HF agreement (LLaMA-3 vocabulary): an HF tokenizer is built from the same
  GGUF vocabulary and merges (BPE with ignore_merges, the LLaMA-3 Split regex,
  ByteLevel; no network needed) and compared on tricky strings, on every
  Unicode code point in several contexts, and on a multilingual corpus of at
  least 1 MB read from files on this machine (gettext catalogs in many
  languages, CJK test texts, Python sources): identical ids on every line and
  every multi-line chunk, and detokenize(tokenize(x)) == x.
- Behaviour: special tokens only with special=True, BOS, invalid UTF-8
  errors with the byte offset, streaming pieces.

The corpus test needs at least 1 MB of text on the machine; it is skipped
(with the size found) elsewhere.
"""

from __future__ import annotations

import gettext
import glob
import lzma
import struct
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

import pytest

bitnet = pytest.importorskip("bitnet")
try:
    from bitnet.tokenizer import Tokenizer
except ImportError:  # pragma: no cover - the package without the module
    pytest.skip("bitnet.tokenizer is not available", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "tokenizer"
BPE = DATA / "ggml-vocab-llama-bpe.gguf"
SPM = DATA / "ggml-vocab-llama-spm.gguf"

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

TRICKY = [
    "",
    " ",
    "Hello world",
    " Hello World!",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "don't DON'T can't it's IT'S you're we've I'm they'll he'd",
    "3 33 333 3333 33333 333333 3.3 3..3 3,141,592.65 1e-10 0x1F 007",
    "١٢٣٤٥ ٦٧٨ ½ ⅓ Ⅻ ² ³ ௰ 〇 一二三",
    "   leading and trailing   ",
    "tabs\tand\t\ttabs \t \t mixed",
    "line\nline\r\nline\rline\n\n\n\nblank lines\n \n \n",
    "  \n  \n\t\n   x",
    " " * 37 + "x" + " " * 200,
    "\n" * 50,
    "emoji 🦙🤗🚀 👨‍👩‍👧‍👦 🏳️‍🌈 ✅ ❤️ 👍🏽",
    "中文字符测试，日本語のテキスト、한국어 텍스트。",
    "accents: café naïve coöperate e\u0301 n\u0303 a\u0308\u0304 Ångström",
    "Ελληνικά Русский текст עברית العربية हिन्दी ไทย ქართული",
    "zero\u200bwidth\u200cjoin\u200dnbsp\u00a0ideo\u3000sp\u2028ls\u2029ps\u0085nel\u001cfs",
    "https://example.com/path?query=1&x=%20y#frag mailto:a@b.c",
    "def f(x):\n    return x ** 2  # comment\n\tif x != 0: pass\n",
    "{\"key\": [1, 2, 3], 'k2': None}",
    "''''''```````\"\"\"\"......!!!!!!?????? ------=======",
    "Ⓐⓑ ＡＢＣ ｆｕｌｌｗｉｄｔｈ ＊ ℌ ℍ ﬁ ﬃ ß ẞ ſ 'ſ",
    "\u0000\u0001\u007f\u0080\u009f control chars",
    "\U0001d400\U0001d401 math \U00010000 \U0010fffd private \ue000",
    "<|begin_of_text|>not special<|eot_id|> <s> </s>",
]


# ---- reading the vocabulary for the HF reference (a small GGUF reader) ----------

_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _read_gguf_kv(path: Path) -> dict:
    data = path.read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n]
        pos += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            if et == 8:
                return [string() for _ in range(n)]
            fmt = _SCALAR[et]
            nonlocal pos
            arr = list(struct.unpack_from(f"<{n}{fmt}", data, pos))
            pos += n * struct.calcsize(fmt)
            return arr
        return take(_SCALAR[t])

    assert data[:4] == b"GGUF"
    pos = 4
    take("I")
    take("Q")
    n_kv = take("Q")
    kv = {}
    for _ in range(n_kv):
        key = string().decode()
        kv[key] = value(take("I"))
    return kv


@lru_cache(maxsize=None)
def vocab(path: Path) -> dict:
    return _read_gguf_kv(path)


@lru_cache(maxsize=None)
def hf_llama3():
    tk = pytest.importorskip("tokenizers")
    kv = vocab(BPE)
    tokens = [t.decode("utf-8") for t in kv["tokenizer.ggml.tokens"]]
    types = kv["tokenizer.ggml.token_type"]
    merges = [tuple(m.decode("utf-8").split(" ", 1)) for m in kv["tokenizer.ggml.merges"]]
    bpe = tk.models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, ignore_merges=True)
    hf = tk.Tokenizer(bpe)
    hf.pre_tokenizer = tk.pre_tokenizers.Sequence(
        [
            tk.pre_tokenizers.Split(tk.Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
        ]
    )
    hf.decoder = tk.decoders.ByteLevel()
    hf.add_special_tokens([tk.AddedToken(tokens[i], special=True, normalized=False) for i, ty in enumerate(types) if ty == 3])
    return hf


@pytest.fixture(scope="module")
def bpe_tok():
    with Tokenizer(BPE) as t:
        yield t


@pytest.fixture(scope="module")
def spm_tok():
    with Tokenizer(SPM) as t:
        yield t


def golden_pairs(path: Path):
    texts = (path.parent / (path.name + ".inp")).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    outs = (path.parent / (path.name + ".out")).read_text(encoding="utf-8").split("\n")[: len(texts)]
    return [(t, [int(x) for x in o.split()]) for t, o in zip(texts, outs)]


# ---- golden ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [BPE, SPM], ids=["llama-bpe", "llama-spm"])
def test_golden(path):
    pairs = golden_pairs(path)
    assert len(pairs) == 46
    with Tokenizer(path) as tok:
        bad = [(t, want, tok.tokenize(t)) for t, want in pairs if tok.tokenize(t) != want]
        assert not bad, f"{len(pairs) - len(bad)} of {len(pairs)} identical; first difference: {bad[0]}"
        for t, _ in pairs:
            assert tok.detokenize(tok.tokenize(t)) == t


EXTRA = ["gpt-2", "qwen2", "falcon", "starcoder", "phi-3"]


@pytest.mark.parametrize("name", EXTRA)
def test_golden_more_vocabularies(name, tmp_path):
    """More of llama.cpp's vocabularies (xz-compressed in tests/data/tokenizer)."""
    path = tmp_path / f"ggml-vocab-{name}.gguf"
    path.write_bytes(lzma.decompress((DATA / f"ggml-vocab-{name}.gguf.xz").read_bytes()))
    for ext in (".inp", ".out"):
        (tmp_path / (path.name + ext)).write_bytes((DATA / (path.name + ext)).read_bytes())
    pairs = golden_pairs(path)
    assert len(pairs) == 46
    with Tokenizer(path) as tok:
        bad = [(t, want, tok.tokenize(t)) for t, want in pairs if tok.tokenize(t) != want]
        assert not bad, f"{name}: {len(pairs) - len(bad)} of {len(pairs)} identical; first difference: {bad[0]}"
        for t, _ in pairs + [(x, None) for x in TRICKY]:
            # where the vocabulary can represent x (Falcon's lacks some bytes)
            if all(tok.detokenize(tok.tokenize(c)) == c for c in set(t)):
                assert tok.detokenize(tok.tokenize(t)) == t, repr(t)


# ---- HF agreement ------------------------------------------------------------------


def compare(tok, hf, texts, special=True):
    """HF parses its added (special) tokens unless encode_special_tokens is set."""
    hf.encode_special_tokens = not special
    try:
        enc = hf.encode_batch(texts, add_special_tokens=False)
    finally:
        hf.encode_special_tokens = False
    diffs = []
    for text, e in zip(texts, enc):
        ours = tok.tokenize(text, special=special)
        if ours != e.ids:
            diffs.append((text, ours, e.ids))
    return diffs


def test_hf_tricky(bpe_tok):
    hf = hf_llama3()
    for special in (True, False):
        diffs = compare(bpe_tok, hf, TRICKY, special)
        assert not diffs, f"special={special}: {len(TRICKY) - len(diffs)} of {len(TRICKY)} identical; first: {diffs[0]}"
    for t in TRICKY:
        assert bpe_tok.detokenize(bpe_tok.tokenize(t)) == t
        assert hf.decode(bpe_tok.tokenize(t, special=True), skip_special_tokens=False) == bpe_tok.detokenize(
            bpe_tok.tokenize(t, special=True)
        )


def test_hf_every_code_point(bpe_tok):
    """Every code point (no surrogates), alone and in the contexts the regex
    cares about: after a letter, a space, an apostrophe, a digit, runs of it,
    before a newline."""
    hf = hf_llama3()
    texts = []
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for i in range(0, len(cps), 16):
        block = [chr(c) for c in cps[i:i + 16]]
        texts.append("".join(block))
        texts.append(" ".join(block) + " ")
        texts.append("a" + "a".join(block) + "'" + "'".join(block))
        texts.append("1" + "1".join(block) + "\n".join(c + c for c in block) + "\n")
    diffs = compare(bpe_tok, hf, texts)
    assert not diffs, f"{len(texts) - len(diffs)} of {len(texts)} identical; first: {diffs[0]!r}"


def test_hf_random_texts(bpe_tok):
    """Random strings from a mix of what the pre-tokenizer cares about."""
    import random

    rng = random.Random(1234)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789١٢٣½",
        " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2028\u3000  \n\n",
        "'.,!?-_()[]{}<>|$+=^~`\"#@/\\*&%;:",
        "sStTmMdDlLvVeErR'",
        "éèñüßøåæœçÀÉÎÕÜ\u0301\u0308\u0303",
        "中文字日本語한국어テキスト",
        "🦙🤗🚀👍🏽\u200d❤️",
    ]
    texts = []
    for _ in range(20000):
        n = rng.randrange(0, 40)
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(n)))
    hf = hf_llama3()
    diffs = compare(bpe_tok, hf, texts)
    assert not diffs, f"{len(texts) - len(diffs)} of {len(texts)} identical; first: {diffs[0]!r}"
    assert all(bpe_tok.detokenize(bpe_tok.tokenize(t)) == t for t in texts)


def test_missing_pre_recognises_llama3(tmp_path, capfd):
    """The official BitNet-b1.58-2B-4T GGUF has no tokenizer.ggml.pre: a LLaMA-3
    vocabulary without it gets llama-bpe (and a line on stderr saying so)."""
    data = BPE.read_bytes()
    key = b"tokenizer.ggml.pre"
    assert data.count(key) == 1
    path = tmp_path / "no-pre.gguf"
    path.write_bytes(data.replace(key, b"tokenizer.ggml.prX"))
    capfd.readouterr()
    with Tokenizer(path) as tok:
        err = capfd.readouterr().err
        assert "llama-bpe" in err and "LLaMA-3" in err
        for text, want in golden_pairs(BPE):
            assert tok.tokenize(text) == want
        assert tok.add_bos


def _corpus_texts(limit: int = 1_500_000) -> list[str]:
    """Text from files on this machine, in a fixed order: gettext catalogs
    (translated messages in many languages), CJK test texts and sources from
    Python's standard library, documentation."""
    out: list[str] = []
    size = 0

    def add(text: str) -> bool:
        nonlocal size
        out.append(text)
        size += len(text.encode("utf-8"))
        return size >= limit

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(stdlib.glob("test/cjkencodings/*-utf8.txt")) + sorted(stdlib.glob("test/*unicode*.py"))[:3]:
        if add(p.read_text(encoding="utf-8", errors="replace")):
            return out
    # one catalog per language, largest languages first by name order
    seen_lang = set()
    for mo in sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo")):
        lang = mo.split("/")[4]
        if lang in seen_lang or size >= limit * 0.75:
            continue
        try:
            with open(mo, "rb") as f:
                cat = gettext.GNUTranslations(f)
        except Exception:
            continue
        seen_lang.add(lang)
        msgs = [v for k, v in sorted(cat._catalog.items(), key=lambda kv: str(kv[0])) if isinstance(v, str) and v]
        if add("\n".join(msgs[:400])):
            return out
    for p in sorted(stdlib.glob("*.py")):
        if add(p.read_text(encoding="utf-8", errors="replace")):
            return out
    return out


def test_hf_corpus(bpe_tok):
    hf = hf_llama3()
    docs = _corpus_texts()
    total = sum(len(d.encode("utf-8")) for d in docs)
    if total < 1_000_000:
        pytest.skip(f"only {total} bytes of text found on this machine (1 MB needed)")
    lines = [ln for d in docs for ln in d.split("\n")]
    diffs = compare(bpe_tok, hf, lines)
    assert not diffs, f"{len(lines) - len(diffs)} of {len(lines)} lines identical; first: {diffs[0]!r}"
    # whole multi-line chunks (newline and indentation handling across lines)
    chunks = []
    for d in docs:
        ls = d.split("\n")
        chunks += ["\n".join(ls[i:i + 40]) for i in range(0, len(ls), 40)]
    diffs = compare(bpe_tok, hf, chunks)
    assert not diffs, f"{len(chunks) - len(diffs)} of {len(chunks)} chunks identical; first: {diffs[0]!r}"
    for c in chunks:
        assert bpe_tok.detokenize(bpe_tok.tokenize(c)) == c
    print(f"\nHF agreement: {len(lines)} lines and {len(chunks)} chunks, {total / 1e6:.2f} MB, all identical")


# ---- behaviour ---------------------------------------------------------------------------


def test_properties(bpe_tok, spm_tok):
    assert (bpe_tok.n_vocab, bpe_tok.bos_id, bpe_tok.eos_id, bpe_tok.eot_id) == (128256, 128000, 128001, 128009)
    assert bpe_tok.add_bos
    assert (spm_tok.n_vocab, spm_tok.bos_id, spm_tok.eos_id) == (32000, 1, 2)
    assert spm_tok.add_bos


def test_special_tokens(bpe_tok, spm_tok):
    s = "<|begin_of_text|>Hello<|eot_id|>"
    assert bpe_tok.tokenize(s, special=True) == [128000, 9906, 128009]
    plain = bpe_tok.tokenize(s)
    assert 128000 not in plain and 128009 not in plain
    assert bpe_tok.detokenize([128000, 9906, 128009]) == s
    assert bpe_tok.detokenize(plain) == s
    assert bpe_tok.tokenize("Hello", add_bos=True) == [128000, 9906]
    ids = spm_tok.tokenize("<s>Hello</s> world", special=True)
    assert ids[0] == 1 and 2 in ids
    assert spm_tok.detokenize(ids) == "<s>Hello</s> world"
    assert spm_tok.tokenize("Hello", add_bos=True) == [1, 15043]


@pytest.mark.parametrize(
    "data,offset",
    [(b"abc\xff", 3), (b"ab\xc3", 2), (b"\xed\xa0\x80", 0), (b"x\xc0\xaf", 1), (b"ok \xf4\x90\x80\x80", 3)],
)
def test_invalid_utf8(bpe_tok, spm_tok, data, offset):
    for tok in (bpe_tok, spm_tok):
        with pytest.raises(bitnet.BitNetError, match=f"byte offset {offset}"):
            tok.tokenize(data)


def test_lone_surrogate_str(bpe_tok):
    with pytest.raises(bitnet.BitNetError, match="byte offset 1"):
        bpe_tok.tokenize("a\ud800b")


def test_bad_ids(bpe_tok):
    with pytest.raises(bitnet.BitNetError, match="out of range"):
        bpe_tok.detokenize([1, 128256])
    with pytest.raises(bitnet.BitNetError):
        bpe_tok.token_to_piece(-1)


def test_streaming(bpe_tok, spm_tok):
    text = "emoji 🦙🤗 中文 naïve\n"
    ids = bpe_tok.tokenize(text)
    assert b"".join(bpe_tok.token_to_piece(i) for i in ids) == text.encode()
    parts = list(bpe_tok.stream(ids))
    assert "".join(parts) == text
    assert all("\ufffd" not in p for p in parts)
    sids = spm_tok.tokenize(text)
    assert "".join(spm_tok.stream(sids)) == " " + text  # the SentencePiece prefix space stays in a stream
    assert spm_tok.detokenize(sids) == text
    # half a character: replacement in detokenize, raw in detokenize_bytes
    first = bpe_tok.tokenize("🦙")
    assert len(first) > 1
    assert bpe_tok.detokenize_bytes(first[:1]) == "🦙".encode()[: len(bpe_tok.token_to_piece(first[0]))]
    assert "\ufffd" in bpe_tok.detokenize(first[:1])


@pytest.mark.parametrize("path", [BPE, SPM], ids=["llama-bpe", "llama-spm"])
def test_round_trip_tricky(path):
    with Tokenizer(path) as tok:
        for t in TRICKY:
            assert tok.detokenize(tok.tokenize(t)) == t, repr(t)


def test_closed():
    tok = Tokenizer(SPM)
    tok.close()
    with pytest.raises(ValueError):
        tok.tokenize("x")
    tok.close()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        Tokenizer(tmp_path / "nope.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 8)
    with pytest.raises(bitnet.BitNetError):
        Tokenizer(bad)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v", "-s"]))
