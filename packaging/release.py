#!/usr/bin/env python3
"""Build bitnet's release artifacts into dist/ from the one version in bitnet.h, and check each.

    python packaging/release.py TARGET... [--out DIR]

Targets: source, sdist, wheel, wasm, deb, brew, choco, snap, install-scripts, all.

Prints every artifact it made with its size, sha256 and the checks it passed, and writes
OUT/SHA256SUMS for the whole folder (docs/releasing.md). Needs the tools of
packaging/requirements.txt (pip) and packaging/apt-packages.txt (apt); a missing tool is an error
that names its package.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnpack import common  # noqa: E402
from bnpack.targets import TARGETS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", choices=[*TARGETS, "all"], metavar="TARGET",
                        help=f"one or more of: {', '.join(TARGETS)}, all")
    parser.add_argument("--out", type=Path, default=common.DIST, help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    names = list(TARGETS) if "all" in args.targets else list(dict.fromkeys(args.targets))
    common.log(f"bitnet {common.version()}: {', '.join(names)} -> {args.out}")
    made: list[common.Artifact] = []
    try:
        for name in names:
            made += TARGETS[name](args.out.resolve())
    except (common.CommandFailed, common.ReleaseError) as exc:
        print(f"release.py: error: {exc}", file=sys.stderr)
        return 1
    sums = common.write_sha256sums(args.out.resolve())
    print(f"\nbitnet {common.version()}: {len(made)} artifacts in {args.out}")
    for artifact in made:
        print(artifact.summary_row())
    print(f"{sums.name}: sha256 of the {len(sums.read_text().splitlines())} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
