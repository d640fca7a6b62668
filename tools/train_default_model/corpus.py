"""The training corpora: the King James Bible from Debian's `bible-kjv` package
("kjv", the shipped model's), and that plus the texts of sources.py ("english").

Why this text: the machines that train the default model reach only PyPI,
Debian and npm, and the model must learn readable English. Debian's
`bible-kjv-text` (4.38) ships the Authorized (King James) Version, 4.4 MB of
English prose whose copyright expired long ago (the package's copyright file:
"The copyright for the King James Version text of the Bible is expired"; the
retrieval program is GPL-2+, and we only run it). Install with

    apt-get install bible-kjv        # pulls bible-kjv-text

The text is stored compressed; the package's `bible` program prints it.
`bible -f Gen1:1-Rev22:21` prints one verse per line, each prefixed with its
reference ("Ge1:1 In the beginning ...").

Layout of the corpus we train on: one chapter per paragraph (verses joined by
a space), paragraphs separated by a blank line. The held-out split is every
20th chapter (chapters 0, 20, 40, ... of the 1,189), so it samples every part
of the book without sharing a sentence with the training split.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import sources

HELD_OUT_EVERY = 20
_VERSE = re.compile(r"^(?P<book>[1-3]?[A-Za-z]+)(?P<chapter>\d+):(?P<verse>\d+) (?P<text>.*)$")


@dataclass(frozen=True)
class Corpus:
    train: str
    held_out: str
    n_chapters: int
    sha256: str  # of the program's raw output (and the sources' archives), to tell a different text apart
    parts: list[dict] = field(default_factory=list)  # what each source contributed


def read_verses() -> str:
    """The raw output of the `bible` program (every verse, with references)."""
    exe = shutil.which("bible")
    if exe is None:
        raise SystemExit("the `bible` program is missing: apt-get install bible-kjv")
    out = subprocess.run([exe, "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    return out


def chapters_of(raw: str) -> list[str]:
    """Chapters as paragraphs, in book order."""
    chapters: list[list[str]] = []
    current: tuple[str, str] | None = None
    for line in raw.splitlines():
        m = _VERSE.match(line.strip())
        if m is None:
            if line.strip():
                raise ValueError(f"unexpected line from `bible`: {line[:80]!r}")
            continue
        key = (m["book"], m["chapter"])
        if key != current:
            chapters.append([])
            current = key
        chapters[-1].append(m["text"].strip())
    return [" ".join(verses) for verses in chapters]


KJV_PART = {"name": "kjv", "manager": "deb", "package": "bible-kjv-text", "version": "4.38",
            "licence": "public domain (usr/share/doc/bible-kjv-text/copyright: the copyright has expired)",
            "what": "the King James Bible"}

# The corpora train.py --corpus can take.
CORPORA = ("kjv", "english")


def split(chunks: list[str]) -> tuple[list[str], list[str]]:
    """(training, held-out) chunks: every HELD_OUT_EVERY-th chunk, from the first, is held out."""
    return ([c for i, c in enumerate(chunks) if i % HELD_OUT_EVERY != 0],
            [c for i, c in enumerate(chunks) if i % HELD_OUT_EVERY == 0])


def load(name: str = "kjv", cache: Path | None = None) -> Corpus:
    """"kjv": the King James Bible alone (the shipped default model's corpus).
    "english": the same plus every text in sources.SOURCES, each split the same
    way (fetched into `cache`, default tests/.cache/corpus of this checkout)."""
    if name not in CORPORA:
        raise SystemExit(f"unknown corpus {name!r}: one of {', '.join(CORPORA)}")
    raw = read_verses()
    chapters = chapters_of(raw)
    train, held = split(chapters)
    digest = hashlib.sha256(raw.encode())
    parts = [KJV_PART | {"sha256": digest.hexdigest(), "train_chars": sum(map(len, train)),
                         "held_out_chars": sum(map(len, held))}]
    if name == "english":
        cache = cache or Path(__file__).resolve().parents[2] / "tests" / ".cache" / "corpus"
        for src in sources.SOURCES:
            paras, sha = sources.paragraphs_of(src, cache)
            tr, he = split(sources.chunks(paras))
            train += tr
            held += he
            digest.update(sha.encode())
            parts.append({"name": src.name, "manager": src.manager, "package": src.package, "version": src.version,
                          "licence": src.licence, "what": src.what, "sha256": sha,
                          "train_chars": sum(map(len, tr)), "held_out_chars": sum(map(len, he))})
    return Corpus(
        train="\n\n".join(train) + "\n",
        held_out="\n\n".join(held) + "\n",
        n_chapters=len(chapters),
        sha256=digest.hexdigest(),
        parts=parts,
    )


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--corpus", choices=CORPORA, default="kjv")
    args = parser.parse_args()
    c = load(args.corpus)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "train.txt").write_text(c.train, encoding="utf-8")
    (args.out_dir / "held_out.txt").write_text(c.held_out, encoding="utf-8")
    for part in c.parts:
        print(f"{part['name']:12s} train {part['train_chars']:9d} chars, held out {part['held_out_chars']:8d}  "
              f"{part['package']} {part['version']} ({part['manager']})")
    print(f"train {len(c.train)} chars, held out {len(c.held_out)} chars; sha256 {c.sha256}")


if __name__ == "__main__":
    main()
