#!/usr/bin/env python3
"""Write the tree of one commit of a (possibly partial) bare git repository to a folder.

    python benchmarks/peers/export_git_tree.py GIT_DIR COMMIT DEST [--path SUBDIR]

Like ``git archive COMMIT | tar -x -C DEST``, but blobs missing from the
repository (snapshots that leave out large files, e.g. test GGUFs or images)
are skipped and listed instead of aborting the export. Submodules (gitlinks)
are left as empty folders; export them separately into that path.
Writes DEST/.export-info (git dir, commit, skipped paths).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def git(git_dir: str, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("git_dir")
    ap.add_argument("commit")
    ap.add_argument("dest")
    ap.add_argument("--path", default="", help="export only this folder of the commit (its contents go to DEST)")
    args = ap.parse_args(argv)
    commit = git(args.git_dir, "rev-parse", f"{args.commit}^{{commit}}").decode().strip()
    sub = args.path.strip("/")
    treeish = f"{commit}:{sub}" if sub else commit
    entries = []  # (mode, type, sha, path)
    for line in git(args.git_dir, "ls-tree", "-r", "-z", "--full-tree", treeish).split(b"\0"):
        if not line:
            continue
        meta, path = line.split(b"\t", 1)
        mode, typ, sha = meta.decode().split()
        entries.append((mode, typ, sha, path.decode()))
    blobs = [e for e in entries if e[1] == "blob"]
    check = git(args.git_dir, "cat-file", "--batch-check", data="".join(e[2] + "\n" for e in blobs).encode())
    present = {ln.split()[0] for ln in check.decode().splitlines() if not ln.endswith("missing")}
    skipped = []
    os.makedirs(args.dest, exist_ok=True)
    for mode, typ, sha, path in entries:
        out = os.path.join(args.dest, path)
        if typ == "commit":  # submodule
            os.makedirs(out, exist_ok=True)
            continue
        if sha not in present:
            skipped.append(path)
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        data = git(args.git_dir, "cat-file", "blob", sha)
        if os.path.lexists(out):
            os.remove(out)
        if mode == "120000":
            os.symlink(data.decode(), out)
            continue
        with open(out, "wb") as f:
            f.write(data)
        if mode == "100755":
            os.chmod(out, 0o755)
    with open(os.path.join(args.dest, ".export-info"), "w") as f:
        f.write(f"git_dir {os.path.abspath(args.git_dir)}\ncommit {commit}\n" + (f"path {sub}\n" if sub else ""))
        for p in skipped:
            f.write(f"skipped {p}\n")
    print(f"exported {commit}{':' + sub if sub else ''} to {args.dest}: {len(blobs) - len(skipped)} files, {len(skipped)} missing blobs skipped",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
