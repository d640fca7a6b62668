#!/usr/bin/env python3
"""Print one markdown table from a run_peers.py results file.

    python benchmarks/peers/report.py [RESULTS.json]   (default: the newest /work/peers/results/peers-*.json)

One row per (file, threads, engine): pp and tg tokens/s (mean +- sd over the
repetitions), the ratio ours / that engine on the SAME file and thread count
(> 1: ours is faster; one ratio per kernel set when run_peers.py ran ours with
--ours-kernels), and how many cores other processes used during the run.
Below it: ours on its best file vs each peer on its own format, per thread count.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

# (engine, format) pairs whose numbers are not measurements of real work
INVALID = {("ik", "I2_S"): "invalid: ik_llama.cpp has no I2_S matmul kernel (it loads the file; numbers meaningless)"}
ORDER = ["ours", "upstream", "ik", "bitnet", "bitnet-main"]
NAMES = {"ours": "ours", "upstream": "llama.cpp", "ik": "ik_llama.cpp", "bitnet": "bitnet.cpp",
         "bitnet-main": "bitnet.cpp main"}


def is_ours(engine: str) -> bool:
    return engine == "ours" or engine.startswith("ours:")


def variant(engine: str) -> str:
    """The kernel set of an ours engine ("ours:avx2" -> "avx2"; plain "ours" -> "auto")."""
    return engine.split(":", 1)[1] if ":" in engine else "auto"


def order(engine: str) -> int:
    return 0 if is_ours(engine) else ORDER.index(engine) if engine in ORDER else 9


def display(engine: str) -> str:
    return f"ours, {variant(engine)}" if ":" in engine else NAMES.get(engine, engine)


def fmt_ts(v: float | None, sd: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f} ± {sd:.1f}" if sd is not None else f"{v:.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="?")
    ap.add_argument("--results-dir", default="/work/peers/results")
    args = ap.parse_args(argv)
    path = args.results
    if not path:
        found = sorted(glob.glob(os.path.join(args.results_dir, "peers-*.json")), key=os.path.getmtime)
        if not found:
            sys.exit(f"no results in {args.results_dir}")
        path = found[-1]
    res = json.load(open(path))
    runs = res["runs"]
    meta = res["meta"]
    p, n = meta["args"]["p"], meta["args"]["n"]

    ok = {(r["engine"], r["file"], r["threads"]): r.get("parsed") or {} for r in runs if r.get("rc") == 0}
    # "ours" (the engine's own kernel pick) or "ours:avx2", "ours:avx512", ... (run_peers.py --ours-kernels)
    ours_engines = sorted({r["engine"] for r in runs if is_ours(r["engine"])})

    def ratios(file: str, threads: int, pr: dict, key: str) -> str:
        """ours / this engine on the same file and thread count, one value per ours variant."""
        vals = []
        for e in ours_engines:
            v = ratio(ok.get((e, file, threads), {}).get(key), pr.get(key))
            vals.append(v if len(ours_engines) == 1 else f"{v} ({variant(e)})")
        return ", ".join(vals)

    print(f"Results: `{path}` ({meta.get('started')}, {meta.get('cpu')}, {meta.get('nproc')} CPUs)\n")
    print(f"| format | file by | t | engine | pp{p} t/s | tg{n} t/s | ours/this pp | ours/this tg | others' cores |")
    print("|---|---|--:|---|--:|--:|--:|--:|--:|")
    key = lambda r: (r["format"], r["threads"], order(r["engine"]), r["engine"])
    for r in sorted(runs, key=key):
        models = meta.get("models", {})
        producer = models.get(r["file"], {}).get("producer", "?").split()[0]
        pr = r.get("parsed") or {}
        name = display(r["engine"]) + (" (cross)" if r.get("role") == "cross" else "")
        if (r["engine"], r["format"]) in INVALID:
            print(f"| {r['format']} | {producer} | {r['threads']} | {name} | {INVALID[(r['engine'], r['format'])]} "
                  f"| | | | {r.get('others_cores')} |")
            continue
        if r.get("rc") != 0 or not pr:
            err = (r.get("error") or "").replace("|", "/")[:90]
            print(f"| {r['format']} | {producer} | {r['threads']} | {name} | failed: {err} | | | | {r.get('others_cores')} |")
            continue
        rp = rt = ""
        if not is_ours(r["engine"]):
            rp, rt = ratios(r["file"], r["threads"], pr, "pp_ts"), ratios(r["file"], r["threads"], pr, "tg_ts")
        print(f"| {r['format']} | {producer} | {r['threads']} | {name} | {fmt_ts(pr.get('pp_ts'), pr.get('pp_sd'))} | "
              f"{fmt_ts(pr.get('tg_ts'), pr.get('tg_sd'))} | {rp} | {rt} | {r.get('others_cores')} |")

    # ours' best file (any variant) vs each peer on its native format
    threads = sorted({r["threads"] for r in runs})
    lines = []
    for t in threads:
        ours = [(v, f, e) for (e, f, th), v in ok.items() if is_ours(e) and th == t]
        if not ours:
            continue
        best_pp = max(ours, key=lambda x: x[0].get("pp_ts") or 0)
        best_tg = max(ours, key=lambda x: x[0].get("tg_ts") or 0)
        for r in runs:
            if r["threads"] != t or is_ours(r["engine"]) or r.get("role") != "native" or r.get("rc") != 0:
                continue
            pr = r.get("parsed") or {}
            lines.append(f"| {t} | {NAMES[r['engine']]} {r['format']} | {ratio(best_pp[0].get('pp_ts'), pr.get('pp_ts'))} "
                         f"({meta['models'][best_pp[1]]['format']}, {variant(best_pp[2])}) | "
                         f"{ratio(best_tg[0].get('tg_ts'), pr.get('tg_ts'))} "
                         f"({meta['models'][best_tg[1]]['format']}, {variant(best_tg[2])}) |")
    if lines:
        print(f"\n| t | peer (its format) | ours best / peer pp{p} | ours best / peer tg{n} |")
        print("|--:|---|--:|--:|")
        print("\n".join(lines))
    busy = [r.get("others_cores") or 0 for r in runs]
    if busy:
        print(f"\nOther processes used {min(busy):.2f}-{max(busy):.2f} cores during the runs "
              f"(of {meta.get('nproc')}); builds: " +
              ", ".join(f"{k} {v.get('commit') or v.get('sdist_sha256', '')[:12]}"[:60] for k, v in meta.get("builds", {}).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
