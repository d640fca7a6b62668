"""The `brew` target: the Homebrew formula ``bitnet.rb`` of this version, carrying the sha256 of the
release source archive (``bitnet-VERSION.tar.gz``, built here from the same tree).

``homebrew/bitnet.rb.in`` is rendered to ``OUT/bitnet.rb`` (``dist/bitnet.rb`` by default), the file a
release copies into the tap as ``Formula/bitnet.rb``. The rendered formula is not kept in git: its
sha256 belongs to one archive, and the next commit would make it stale. Homebrew cannot run on these machines, so the
formula is checked as closely as it can be without it:

1. ``ruby -wc``: it parses, without a single warning;
2. rubocop with ``homebrew/.rubocop.yml`` (Homebrew's own style settings, as far as Debian's rubocop
   has the cops), zero offenses, on the formula and on the stand-in that runs it;
3. ``homebrew/standin/run_formula.rb``, a small stand-in for the Formula DSL: the archive's sha256
   must equal the formula's, then the formula's ``install`` builds it with CMake into a temporary
   prefix and its ``test do`` block runs (a C program against the installed library generating
   with the default model, then bitnet-cli).

What only Homebrew can check (``brew audit --strict``, ``brew install --build-from-source``,
``brew test``, bottles) is the tap's CI, run on the published archive.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from . import source_archive
from .common import (REPO, Artifact, CommandFailed, ReleaseError, log, require_tool, run, sha256_file,
                     version)

HOMEBREW = REPO / "homebrew"
TEMPLATE = HOMEBREW / "bitnet.rb.in"
RUBOCOP_CONFIG = HOMEBREW / ".rubocop.yml"
STANDIN = HOMEBREW / "standin"
RUNNER = STANDIN / "run_formula.rb"

# The checks' own tools, and what the formula's install and test blocks call; each with the Debian
# package that provides it.
TOOLS = (("ruby", "ruby"), ("rubocop", "rubocop"), ("cmake", "cmake"), ("cc", "gcc"),
         ("pkgconf", "pkg-config"))

PLACEHOLDER = re.compile(r"@([A-Z0-9_]+)@")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill the template's @NAME@ placeholders; one with no value is an error, never left behind."""
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ReleaseError(f"{TEMPLATE.name}: no value for @{name}@")
        return values[name]

    return PLACEHOLDER.sub(fill, template)


def _write(path: Path, text: str) -> None:
    """Write only when the text changes, so a rerun leaves the committed formula's mtime alone."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def check_syntax(formula: Path) -> None:
    """``ruby -wc``: Homebrew loads formulae with warnings on, so a warning counts as an error."""
    said = run(["ruby", "-wc", formula], capture=True).stdout.strip()
    if said != "Syntax OK":
        raise ReleaseError(f"ruby -wc {formula.name}:\n{said}")


def check_style(formula: Path) -> None:
    """rubocop on the formula and the stand-in. The formula is fed on stdin under its template's
    name, so the formula-only settings of .rubocop.yml apply wherever the rendered file was put."""
    base = ["rubocop", "--config", RUBOCOP_CONFIG, "--format", "simple", "--no-color"]
    try:
        run([*base, "--stdin", HOMEBREW / "bitnet.rb"], capture=True, input=formula.read_text(encoding="utf-8"))
        run([*base, *sorted(STANDIN.glob("*.rb"))], capture=True)
    except CommandFailed as exc:
        raise ReleaseError(f"rubocop found offenses (homebrew/.rubocop.yml):\n{exc.output[-4000:]}") from exc


def check_with_standin(formula: Path, archive: Path) -> None:
    """Install and test the formula with the stand-in; its output (the CMake build) streams through."""
    run(["ruby", "-w", RUNNER, formula, archive])


def build_and_check(out_dir: Path) -> list[Artifact]:
    for tool, package in TOOLS:
        require_tool(tool, package)
    archive = source_archive.build(out_dir)
    text = render(TEMPLATE.read_text(encoding="utf-8"), {"VERSION": version(), "SHA256": sha256_file(archive)})
    formula = out_dir / "bitnet.rb"
    _write(formula, text)
    log(f"formula {formula}: {archive.name}, sha256 {sha256_file(archive)}")

    check_syntax(formula)
    check_style(formula)
    check_with_standin(formula, archive)
    return [Artifact(formula, ["ruby -wc (no warnings)", "rubocop (homebrew/.rubocop.yml): no offenses",
                               f"stand-in install + test do against {archive.name} (sha256 verified)"])]
