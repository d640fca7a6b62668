"""The text helpers of tools/train_default_model/sources.py, offline.

The real sources are packages fetched from npm, PyPI and Debian; these tests
build small stand-ins of the same shapes (a hard-wrapped novel, a Gutenberg
etext, a one-line speech, an R lazy-load database) so that the cutting into
paragraphs, chunks and the held-out split is checked without the network.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools" / "train_default_model"


def load(name: str) -> ModuleType:
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))  # corpus.py imports sources
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


sources = load("sources")


def test_prose_paragraphs_join_hard_wraps_and_split_on_blank_lines() -> None:
    text = "Call me Ishmael. Some years ago\nnever mind how long.\n\n\n  It is a way I have\nof driving off the spleen.\n"
    assert sources.prose_paragraphs(text) == [
        "Call me Ishmael. Some years ago never mind how long.",
        "It is a way I have of driving off the spleen.",
    ]


def test_verse_paragraphs_keep_line_breaks() -> None:
    text = "THESEUS\nNow, fair Hippolyta, our nuptial hour\nDraws on apace\n\nHIPPOLYTA\nFour days"
    assert sources.verse_paragraphs(text) == [
        "THESEUS\nNow, fair Hippolyta, our nuptial hour\nDraws on apace",
        "HIPPOLYTA\nFour days",
    ]


def test_strip_gutenberg_keeps_only_the_text_between_the_markers() -> None:
    etext = "licence words\n*** START OF THE PROJECT GUTENBERG EBOOK ***\nAlice was beginning\n*** END OF IT ***\nmore licence"
    assert sources.strip_gutenberg(etext).strip() == "Alice was beginning"
    assert sources.strip_gutenberg("no markers at all") == "no markers at all"


def test_sentence_paragraphs_cut_a_one_line_speech_at_sentence_ends() -> None:
    speech = " ".join(f"Sentence number {i} is here." for i in range(100))
    pieces = sources.sentence_paragraphs(speech, size=200)
    assert " ".join(pieces) == speech  # nothing lost or reordered
    assert all(p.endswith(".") for p in pieces)
    assert all(len(p) >= 200 for p in pieces[:-1]) and all(len(p) < 260 for p in pieces)


def test_chunks_never_split_a_paragraph_and_hold_no_blank_line() -> None:
    paras = [f"paragraph {i} " + "x" * (i * 37 % 300) for i in range(200)]
    chunks = sources.chunks(paras, size=1000)
    assert "\n".join(chunks).split("\n") == paras
    assert all("\n\n" not in c for c in chunks)
    assert all(len(c) >= 1000 for c in chunks[:-1])


def rdb_record(strings: list[str | None]) -> bytes:
    """One record of an R lazy-load database holding a character vector
    (XDR serialization version 3, as R writes it)."""
    body = b"X\n" + struct.pack(">iii", 3, 0x040201, 0x030500) + struct.pack(">i", 5) + b"UTF-8"
    body += struct.pack(">ii", 16, len(strings))  # STRSXP
    for s in strings:
        if s is None:
            body += struct.pack(">ii", 9, -1)  # NA_character_
        else:
            b = s.encode()
            body += struct.pack(">ii", 0x00040009, len(b)) + b
    return struct.pack(">I", len(body)) + zlib.compress(body)


def test_r_strings_reads_character_vectors_and_skips_other_objects() -> None:
    other = b"X\n" + struct.pack(">iii", 3, 0, 0) + struct.pack(">i", 5) + b"UTF-8" + struct.pack(">ii", 14, 1) + b"\0" * 8
    rdb = rdb_record(["EMMA", "", "By Jane Austen", None, "Emma Woodhouse, handsome"]) + \
        struct.pack(">I", len(other)) + zlib.compress(other) + rdb_record(["PERSUASION"])
    assert sources.r_strings(rdb) == [["EMMA", "", "By Jane Austen", "", "Emma Woodhouse, handsome"], ["PERSUASION"]]


def test_every_source_is_pinned_by_version_and_sha256() -> None:
    for src in sources.SOURCES:
        assert src.manager in {"npm", "pypi", "deb"}
        assert src.version and src.licence and src.what
        assert len(src.sha256) == 64 and int(src.sha256, 16) >= 0, src.name


def test_fetch_refuses_an_archive_whose_sha256_differs(tmp_path: Path) -> None:
    src = sources.SOURCES[0]
    (tmp_path / src.manager).mkdir()
    (tmp_path / src.manager / src.archive).write_bytes(b"not the package")
    with pytest.raises(SystemExit, match="sha256"):
        sources.fetch(src, tmp_path)


def test_held_out_split_takes_every_20th_chunk_from_the_first() -> None:
    corpus = load("corpus")
    train, held = corpus.split([f"c{i}" for i in range(45)])
    assert held == ["c0", "c20", "c40"]
    assert len(train) == 42 and not set(train) & set(held)
