"""Tokenizer of a Hugging Face model directory -> GGUF ``tokenizer.*`` metadata.

Two kinds, as the engine's tokenizer (core_c/tokenizer.c) reads them:

- ``tokenizer.json`` with a byte-level BPE model -> ``tokenizer.ggml.model = "gpt2"``:
  tokens (GPT-2 byte alphabet, as stored), merges, token types, and
  ``tokenizer.ggml.pre`` named after the pre-tokenizer's split regex: LLaMA-3's ->
  ``llama-bpe`` (with ``ignore_merges``, as LLaMA-3 sets it; without it ``dbrx``, which the
  engine runs with the same regex and no merge shortcut), Qwen2's -> ``qwen2``, GPT-2's
  ByteLevel regex -> ``gpt-2``. Anything else is refused rather than tokenized differently
  from the model's own tokenizer.
- ``tokenizer.model`` (SentencePiece BPE) -> ``tokenizer.ggml.model = "llama"``: pieces,
  scores, types, ``add_space_prefix`` from the normalizer's ``add_dummy_prefix``. The file
  is a protobuf ``ModelProto`` read here directly (pieces = field 1 {piece 1, score 2,
  type 3}; trainer_spec = 2 {model_type 3}; normalizer_spec = 3 {add_dummy_prefix 3}; field
  numbers from sentencepiece's sentencepiece_model.proto), so no sentencepiece package is
  needed.

Token types use GGUF's numbering (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
6 byte), which is also SentencePiece's. As llama.cpp's converter does, ids the tokenizer
does not define up to the embedding's row count become ``[PAD<id>]`` (unused), added
tokens marked special (or looking like ``<|...|>``) are control tokens, other added tokens
user-defined. BOS/EOS/UNK/PAD ids come from tokenizer_config.json's ``*_token`` texts, else
config.json's ``*_token_id``; ``add_bos_token``/``add_eos_token`` from tokenizer_config.json,
else from tokenizer.json's post-processor template; ``tokenizer.chat_template`` from
tokenizer_config.json (or chat_template.jinja).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ._convert_common import ARRAY, BOOL, FLOAT32, INT32, KV, STRING, UINT32, ConvertError, read_json

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def vocab_kvs(directory: Path, n_vocab: int, config: dict[str, Any]) -> list[KV]:
    """The ``tokenizer.*`` metadata for a model whose embedding has ``n_vocab`` rows."""
    tok_config = read_json(directory / "tokenizer_config.json", required=False) or {}
    tj = read_json(directory / "tokenizer.json", required=False)
    spm = directory / "tokenizer.model"
    if tj is not None and _is_byte_level(tj):
        kvs, text_to_id = _byte_level(tj, n_vocab, directory)
    elif spm.is_file():
        kvs, text_to_id = _sentencepiece(spm, n_vocab, directory, tok_config)
    elif tj is not None:
        raise ConvertError(f"{directory / 'tokenizer.json'}: only byte-level BPE tokenizer.json files are read "
                           f"(model {tj.get('model', {}).get('type')!r}); a SentencePiece model needs its "
                           f"tokenizer.model", unsupported=True)
    else:
        raise ConvertError(f"{directory}: no tokenizer.json or tokenizer.model")
    kvs += _special_kvs(tok_config, config, text_to_id, tj)
    template = _chat_template(directory, tok_config)
    if template:
        kvs.append(KV("tokenizer.chat_template", template, STRING))
    return kvs


def _pre_items(tj: dict[str, Any]) -> list[dict[str, Any]]:
    pre = tj.get("pre_tokenizer") or {}
    items = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    return [p for p in items if p]


def _is_byte_level(tj: dict[str, Any]) -> bool:
    return (tj.get("model") or {}).get("type") == "BPE" and any(p.get("type") == "ByteLevel" for p in _pre_items(tj))


def _pre_name(tj: dict[str, Any], where: Path) -> str:
    """tokenizer.ggml.pre for a byte-level tokenizer.json (see the module docstring)."""
    items = _pre_items(tj)
    kinds = [p.get("type") for p in items]
    byte_level = items[-1] if kinds and kinds[-1] == "ByteLevel" else None
    regex = None
    if byte_level is not None and byte_level.get("add_prefix_space"):
        regex = None
    elif kinds == ["ByteLevel"] and byte_level.get("use_regex", True):  # type: ignore[union-attr]
        regex = GPT2_REGEX
    elif kinds == ["Split", "ByteLevel"] and not byte_level.get("use_regex", True):  # type: ignore[union-attr]
        split = items[0]
        if split.get("behavior") == "Isolated" and not split.get("invert"):
            regex = (split.get("pattern") or {}).get("Regex")
    ignore_merges = bool((tj.get("model") or {}).get("ignore_merges", False))
    if regex == LLAMA3_REGEX:
        return "llama-bpe" if ignore_merges else "dbrx"
    if regex in (QWEN2_REGEX, GPT2_REGEX) and not ignore_merges:
        return "qwen2" if regex == QWEN2_REGEX else "gpt-2"
    raise ConvertError(f"{where}: this pre-tokenizer is not one the engine implements (LLaMA-3's, Qwen2's and "
                       f"GPT-2's split regexes are): {json.dumps(tj.get('pre_tokenizer'))[:300]}, ignore_merges="
                       f"{ignore_merges}", unsupported=True)


def _byte_level(tj: dict[str, Any], n_vocab: int, directory: Path) -> tuple[list[KV], dict[str, int]]:
    where = directory / "tokenizer.json"
    pre = _pre_name(tj, where)
    if tj.get("normalizer"):
        warnings.warn(f"{where}: the normalizer ({tj['normalizer'].get('type')}) is not applied by the engine; "
                      f"text it would change tokenizes differently", stacklevel=3)
    model = tj["model"]
    vocab: dict[str, int] = model.get("vocab") or {}
    added = [a for a in tj.get("added_tokens") or [] if isinstance(a, dict) and "id" in a and "content" in a]
    tokens: list[str | None] = [None] * n_vocab
    types = [UNUSED] * n_vocab
    for text, i in list(vocab.items()) + [(a["content"], a["id"]) for a in added]:
        if not isinstance(i, int) or not 0 <= i < n_vocab:
            raise ConvertError(f"{where}: token {text!r} has id {i}, but the model's embedding has {n_vocab} rows")
    for text, i in vocab.items():
        tokens[i], types[i] = text, NORMAL
    for a in added:
        text = a["content"]
        special = bool(a.get("special")) or (text.startswith("<|") and text.endswith("|>"))
        tokens[a["id"]], types[a["id"]] = text, CONTROL if special else USER_DEFINED
    out = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    if not merges:
        raise ConvertError(f"{where}: the BPE model has no merges")
    kvs = [
        KV("tokenizer.ggml.model", "gpt2", STRING),
        KV("tokenizer.ggml.pre", pre, STRING),
        KV("tokenizer.ggml.tokens", out, ARRAY, STRING),
        KV("tokenizer.ggml.token_type", types, ARRAY, INT32),
        KV("tokenizer.ggml.merges", merges, ARRAY, STRING),
    ]
    return kvs, {t: i for i, t in enumerate(out)}


# ---- SentencePiece (tokenizer.model) ---------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, pos


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; value is an int (varint),
    or bytes (length-delimited, fixed32, fixed64)."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = _varint(buf, pos)
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
            v, pos = buf[pos : pos + size], pos + size
        elif wt == 2:
            n, pos = _varint(buf, pos)
            v, pos = buf[pos : pos + n], pos + n
        else:
            raise ValueError(f"unsupported wire type {wt}")
        if pos > len(buf):
            raise ValueError("truncated message")
        out.append((field, wt, v))
    return out


def parse_sentencepiece(data: bytes) -> tuple[list[tuple[str, float, int]], int, bool]:
    """(pieces as (text, score, type), trainer model_type, normalizer add_dummy_prefix)."""
    import struct

    pieces: list[tuple[str, float, int]] = []
    model_type, dummy_prefix = 1, True  # the proto2 defaults: UNIGRAM, true
    for field, wt, v in _fields(data):
        if field == 1 and wt == 2:
            text, score, ty = "", 0.0, NORMAL
            for f2, w2, v2 in _fields(v):
                if f2 == 1 and w2 == 2:
                    text = v2.decode("utf-8")
                elif f2 == 2 and w2 == 5:
                    score = struct.unpack("<f", v2)[0]
                elif f2 == 3 and w2 == 0:
                    ty = v2
            pieces.append((text, score, ty))
        elif field == 2 and wt == 2:
            for f2, w2, v2 in _fields(v):
                if f2 == 3 and w2 == 0:
                    model_type = v2
        elif field == 3 and wt == 2:
            for f2, w2, v2 in _fields(v):
                if f2 == 3 and w2 == 0:
                    dummy_prefix = bool(v2)
    return pieces, model_type, dummy_prefix


def _sentencepiece(path: Path, n_vocab: int, directory: Path,
                   tok_config: dict[str, Any]) -> tuple[list[KV], dict[str, int]]:
    try:
        pieces, model_type, dummy_prefix = parse_sentencepiece(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path}: not a SentencePiece model ({exc})") from None
    if not pieces:
        raise ConvertError(f"{path}: not a SentencePiece model (no pieces)")
    if model_type != 2:
        raise ConvertError(f"{path}: SentencePiece model type {model_type} (the engine implements BPE, type 2)",
                           unsupported=True)
    tokens = [p[0] for p in pieces]
    scores = [float(p[1]) for p in pieces]
    types = [p[2] if 1 <= p[2] <= 6 else NORMAL for p in pieces]
    extra: dict[int, tuple[str, int]] = {}
    added = read_json(directory / "added_tokens.json", required=False) or {}
    for text, i in added.items():
        if isinstance(i, int) and i >= len(tokens):
            extra[i] = (text, USER_DEFINED)
    for key, a in (tok_config.get("added_tokens_decoder") or {}).items():
        if isinstance(a, dict) and str(key).isdigit() and "content" in a:
            extra[int(key)] = (a["content"], CONTROL if a.get("special") else USER_DEFINED)
    for i, (text, ty) in sorted(extra.items()):
        if i >= n_vocab:
            raise ConvertError(f"{directory}: added token {text!r} has id {i}, but the embedding has {n_vocab} rows")
        while len(tokens) <= i:
            tokens.append(f"[PAD{len(tokens)}]")
            scores.append(-1000.0)
            types.append(UNUSED)
        tokens[i], types[i] = text, ty
        scores[i] = scores[i] if i < len(pieces) else -1000.0
    if len(tokens) > n_vocab:
        raise ConvertError(f"{path}: {len(tokens)} pieces, but the model's embedding has {n_vocab} rows")
    for i in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{i}]")
        scores.append(-1000.0)
        types.append(UNUSED)
    kvs = [
        KV("tokenizer.ggml.model", "llama", STRING),
        KV("tokenizer.ggml.tokens", tokens, ARRAY, STRING),
        KV("tokenizer.ggml.scores", scores, ARRAY, FLOAT32),
        KV("tokenizer.ggml.token_type", types, ARRAY, INT32),
        KV("tokenizer.ggml.add_space_prefix", dummy_prefix, BOOL),
    ]
    text_to_id: dict[str, int] = {}
    for i, t in enumerate(tokens):
        text_to_id.setdefault(t, i)
    return kvs, text_to_id


# ---- special tokens, flags, chat template ----------------------------------------------


def _special_kvs(tok_config: dict[str, Any], config: dict[str, Any], text_to_id: dict[str, int],
                 tj: dict[str, Any] | None) -> list[KV]:
    kvs = []
    for kind, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        tid = _special_id(kind, tok_config, config, text_to_id)
        if tid is not None:
            kvs.append(KV(f"tokenizer.ggml.{key}_token_id", tid, UINT32))
    add_bos, add_eos = tok_config.get("add_bos_token"), tok_config.get("add_eos_token")
    t_bos, t_eos = _template_adds(tj) if tj is not None else (None, None)
    add_bos = add_bos if isinstance(add_bos, bool) else t_bos
    add_eos = add_eos if isinstance(add_eos, bool) else t_eos
    if add_bos is None and tj is None:
        add_bos = True  # LlamaTokenizer's default (SentencePiece models)
    kvs.append(KV("tokenizer.ggml.add_bos_token", bool(add_bos), BOOL))
    if add_eos is not None:
        kvs.append(KV("tokenizer.ggml.add_eos_token", bool(add_eos), BOOL))
    return kvs


def _special_id(kind: str, tok_config: dict[str, Any], config: dict[str, Any],
                text_to_id: dict[str, int]) -> int | None:
    tok = tok_config.get(f"{kind}_token")
    text = tok.get("content") if isinstance(tok, dict) else tok
    if isinstance(text, str) and text in text_to_id:
        return text_to_id[text]
    tid = config.get(f"{kind}_token_id")
    if isinstance(tid, list) and tid:
        tid = tid[0]
    if isinstance(tid, int) and not isinstance(tid, bool) and 0 <= tid <= max(text_to_id.values(), default=-1):
        return tid
    return None


def _template_adds(tj: dict[str, Any]) -> tuple[bool | None, bool | None]:
    """Whether tokenizer.json's post-processor puts a special token first / last."""
    pp = tj.get("post_processor") or {}
    procs = pp.get("processors", []) if pp.get("type") == "Sequence" else [pp]
    for p in procs:
        if isinstance(p, dict) and p.get("type") == "TemplateProcessing":
            single = p.get("single") or []
            if single:
                return "SpecialToken" in single[0], "SpecialToken" in single[-1]
            return False, False
    return None, None


def _chat_template(directory: Path, tok_config: dict[str, Any]) -> str | None:
    t = tok_config.get("chat_template")
    if isinstance(t, list):  # [{"name": ..., "template": ...}]: the default one
        named = {x.get("name"): x.get("template") for x in t if isinstance(x, dict)}
        t = named.get("default") or next(iter(named.values()), None)
    if isinstance(t, str) and t:
        return t
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8") or None
    return None
