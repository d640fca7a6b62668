#!/usr/bin/env python3
"""Run the peers' llama-bench (and our engine) on the models from make_models.py.

    python benchmarks/peers/run_peers.py [--threads 1,2] \\
        [--ours-cmd 'python -m bitnet bench {model} -t {threads} -p {p} -n {n} -r {r} --json']

For each model file in MODELS_DIR/models.json and each thread count:
  * the peer that made the file runs
        PEER/bin/llama-bench -m FILE -p 128 -n 64 -r 3 -t T -o json
    (upstream: TQ2_0, TQ1_0; ik: IQ2_BN; bitnet and bitnet-main: I2_S). --cross also runs every other
    peer that can run the file (bitnet.cpp: TQ1_0/TQ2_0); a peer that
    cannot load it is recorded as failed, with its error.
  * our engine runs --ours-cmd (a template: {model} {threads} {p} {n} {r}) on every file,
    if given (or $BITNET_OURS_CMD). Its stdout must be JSON: llama-bench's list, or
    `bitnet bench --json`'s {"results": [{"pp_tok_s_mean": ..., "tg_tok_s_mean": ...}]}.
    A failing ours-run is recorded and does not stop the others.
    --ours-kernels avx2,avx512 runs it once per kernel set (BITNET_KERNEL=...), recorded
    as engines ours:avx2, ours:avx512, so one run compares every variant with the peers.

Everything goes into one results file (default RESULTS_DIR/peers-<time>.json); raw
stdout/stderr of each run are kept next to it in a folder of the same name.
benchmarks/peers/report.py prints the table.

Load: before each run the script waits (up to --wait s) until the other processes
use less than --max-busy cores (sampled from /proc/stat for 3 s); during each run it
records how many cores everything else used (total busy time from /proc/stat minus
the run's own CPU time), so a loaded machine shows up in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time

PEERS = ["upstream", "ik", "bitnet", "bitnet-main"]
NATIVE = {"TQ2_0": ["upstream"], "TQ1_0": ["upstream"], "IQ2_BN": ["ik"], "I2_S": ["bitnet", "bitnet-main"]}
# Other peers' files a peer can really run. Not ik on I2_S: ik_llama.cpp loads I2_S files but has
# no I2_S matmul (vec_dot NULL; I2_S is only a source for its llama-quantize), so llama-bench
# "runs" them with the matmuls not done and prints meaningless, very high numbers.
CROSS = {"bitnet": {"TQ1_0", "TQ2_0"}, "bitnet-main": {"TQ1_0", "TQ2_0"}}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[run_peers] {msg}", file=sys.stderr, flush=True)


def cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    guest = sum(v[8:10]) if len(v) > 9 else 0  # already counted in user/nice
    return (sum(v) - idle - guest) / CLK_TCK


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def others_busy(sample_s: float = 3.0) -> float:
    """Cores used by other processes, averaged over sample_s (this script is idle meanwhile)."""
    b0, t0 = cpu_busy_s(), time.time()
    time.sleep(sample_s)
    return (cpu_busy_s() - b0) / (time.time() - t0)


def top_procs(n: int = 5) -> list[str]:
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,pid,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
        return [ln.strip() for ln in out.splitlines()[1:n + 1]]
    except OSError:
        return []


def wait_idle(max_busy: float, wait_s: float) -> tuple[float, float]:
    """Wait until others use < max_busy cores or wait_s passed. Returns (busy, waited_s)."""
    t0 = time.time()
    while True:
        busy = others_busy()
        waited = time.time() - t0
        if busy < max_busy or waited >= wait_s:
            if busy >= max_busy:
                log(f"machine still busy ({busy:.2f} cores used by others) after {waited:.0f} s: running anyway")
            return busy, waited
        log(f"others use {busy:.2f} cores (> {max_busy}); waiting ({waited:.0f}/{wait_s:.0f} s) "
            f"top: {'; '.join(top_procs(3))}")
        time.sleep(20)


def parse_llama_bench(data: object) -> dict:
    """llama-bench -o json: a list of tests with n_prompt, n_gen, avg_ts, stddev_ts."""
    out: dict = {}
    for t in data if isinstance(data, list) else []:
        key = "pp" if t.get("n_prompt", 0) > 0 and t.get("n_gen", 0) == 0 else "tg" if t.get("n_gen", 0) > 0 else None
        if key:
            out[f"{key}_ts"], out[f"{key}_sd"] = t.get("avg_ts"), t.get("stddev_ts")
            out[f"{key}_samples"] = t.get("samples_ts")
            out["build_commit"], out["build_number"] = t.get("build_commit"), t.get("build_number")
            out["model_type"], out["model_size"] = t.get("model_type"), t.get("model_size")
            out["cpu_info"] = t.get("cpu_info")
    return out


def is_ours(engine: str) -> bool:
    """'ours' (the engine's own kernel pick) or 'ours:KERNEL' (one forced kernel set)."""
    return engine == "ours" or engine.startswith("ours:")


def parse_ours(data: object, threads: int) -> dict:
    if isinstance(data, list):
        return parse_llama_bench(data)
    res = [r for r in (data.get("results", []) if isinstance(data, dict) else []) if r.get("threads") in (threads, None)]
    if not res:
        return {}
    r = res[0]
    return {"pp_ts": r.get("pp_tok_s_mean"), "pp_sd": r.get("pp_tok_s_sd"), "tg_ts": r.get("tg_tok_s_mean"),
            "tg_sd": r.get("tg_tok_s_sd"), "kernel": r.get("kernel"), "load_s": r.get("load_s"),
            "version": data.get("bitnet_version") if isinstance(data, dict) else None}


def extract_json(text: str) -> object:
    """The JSON document in stdout (tolerates log lines around it)."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    m = re.search(r"(\[\s*\{.*\}\s*\]|\{.*\})", text, re.S)
    if m:
        return json.loads(m.group(1))
    raise ValueError("no JSON in stdout")


def run_one(engine: str, cmd: list[str], raw_base: str, timeout: float, threads: int, cwd: str | None,
            env: dict[str, str] | None = None) -> dict:
    log(f"{engine}: $ {' '.join(shlex.quote(c) for c in cmd)}")
    rec: dict = {"cmd": cmd, "load_before": os.getloadavg()}
    b0, c0, t0 = cpu_busy_s(), children_cpu_s(), time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        def text(x: bytes | str | None) -> str:  # always bytes here, whatever text= says
            return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
        rc, out, err = 124, text(e.stdout), text(e.stderr) + f"\ntimeout after {timeout} s"
    except OSError as e:
        rc, out, err = 127, "", str(e)
    wall = time.time() - t0
    own = children_cpu_s() - c0
    rec.update(rc=rc, wall_s=round(wall, 2), own_cpu_s=round(own, 2),
               others_cores=round(max(0.0, (cpu_busy_s() - b0 - own) / wall), 2), load_after=os.getloadavg())
    with open(raw_base + ".stdout", "w") as f:
        f.write(out)
    with open(raw_base + ".stderr", "w") as f:
        f.write(err)
    rec["raw"] = os.path.basename(raw_base)
    if rc == 0:
        try:
            data = extract_json(out)
            rec["parsed"] = parse_ours(data, threads) if is_ours(engine) else parse_llama_bench(data)
        except ValueError as e:
            rec["error"] = str(e)
    if rc != 0 or not rec.get("parsed"):
        lines = [ln for ln in (err + out).splitlines() if ln.strip()]
        errs = [ln for ln in lines if re.search(r"error|failed|unknown|invalid|exception|abort", ln, re.I)]
        rec["error"] = rec.get("error") or " | ".join((errs or lines)[-3:])[-600:]
        log(f"{engine}: failed (rc {rc}): {rec['error']}")
    else:
        pr = rec["parsed"]
        log(f"{engine}: pp {pr.get('pp_ts')} tg {pr.get('tg_ts')} t/s  (others used {rec['others_cores']} cores)")
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default="/work/peers/models")
    ap.add_argument("--build-dir", default="/work/peers/build")
    ap.add_argument("--results-dir", default="/work/peers/results")
    ap.add_argument("--out", help="results file (default: RESULTS_DIR/peers-<time>.json)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: 1,2)")
    ap.add_argument("-p", type=int, default=128, help="prompt tokens (default: 128)")
    ap.add_argument("-n", type=int, default=64, help="generated tokens (default: 64)")
    ap.add_argument("-r", type=int, default=3, help="repetitions (default: 3)")
    ap.add_argument("--peers", default=None,
                    help=f"comma-separated subset of {','.join(PEERS)} ('' for none; default: those built)")
    ap.add_argument("--formats", default=None, help="comma-separated subset of formats (default: all files)")
    ap.add_argument("--cross", nargs="?", const=",".join(CROSS), default="", metavar="PEERS",
                    help="also run these peers (default: all) on the other peers' formats they can run: "
                         "bitnet/bitnet-main on TQ1_0/TQ2_0")
    ap.add_argument("--ours-cmd", default=os.environ.get("BITNET_OURS_CMD"),
                    help="our engine's command template ({model} {threads} {p} {n} {r}); omitted: no ours rows")
    ap.add_argument("--ours-cwd", default=None, help="working directory for --ours-cmd")
    ap.add_argument("--ours-kernels", default="",
                    help="comma-separated kernel sets to run ours with (BITNET_KERNEL), e.g. avx2,avx512; "
                         "default: the one the engine picks")
    ap.add_argument("--max-busy", type=float, default=0.3,
                    help="wait until other processes use fewer cores than this (default: 0.3)")
    ap.add_argument("--wait", type=float, default=1800, help="longest wait for an idle machine per run, s (default 1800)")
    ap.add_argument("--timeout", type=float, default=1800, help="per-run timeout, s (default: 1800)")
    ap.add_argument("--dry-run", action="store_true", help="print the runs only")
    args = ap.parse_args(argv)

    manifest = json.load(open(os.path.join(args.models_dir, "models.json")))
    files = {name: info for name, info in manifest["files"].items()
             if info["format"] in NATIVE and os.path.exists(os.path.join(args.models_dir, name))}
    if args.formats:
        keep = set(args.formats.split(","))
        files = {k: v for k, v in files.items() if v["format"] in keep}
    if args.peers is None:
        peers = [p for p in PEERS if os.path.exists(os.path.join(args.build_dir, p, "bin", "llama-bench"))]
    else:
        peers = [p for p in args.peers.split(",") if p]
    threads = [int(t) for t in args.threads.split(",")]
    kernels = [k for k in args.ours_kernels.split(",") if k]
    ours_engines = ([f"ours:{k}" for k in kernels] or ["ours"]) if args.ours_cmd else []

    plan: list[tuple[str, str, str]] = []  # (engine, file, role)
    for name, info in sorted(files.items(), key=lambda kv: list(NATIVE).index(kv[1]["format"])):
        fmt = info["format"]
        for engine in ours_engines:
            plan.append((engine, name, "ours"))
        for peer in peers:
            if peer in NATIVE[fmt]:
                plan.append((peer, name, "native"))
            elif peer in args.cross.split(",") and fmt in CROSS.get(peer, set()):
                plan.append((peer, name, "cross"))
    if not plan:
        log("nothing to run (no models? run make_models.py)")
        return 1
    for engine, name, role in plan:
        print(f"{engine:12s} {role:7s} {name}  threads {threads}")
    if args.dry_run:
        return 0

    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.results_dir, exist_ok=True)
    out_path = args.out or os.path.join(args.results_dir, f"peers-{stamp}.json")
    raw_dir = os.path.splitext(out_path)[0]
    os.makedirs(raw_dir, exist_ok=True)
    builds = {}
    for peer in PEERS:
        bj = os.path.join(args.build_dir, peer, "build.json")
        if os.path.exists(bj):
            builds[peer] = json.load(open(bj))
    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    except OSError:
        pass
    results = {"meta": {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(), "cpu": cpu,
                        "nproc": os.cpu_count(), "args": vars(args), "builds": builds, "models": files},
               "runs": []}

    def save() -> None:
        with open(out_path + ".tmp", "w") as f:
            json.dump(results, f, indent=2)
        os.replace(out_path + ".tmp", out_path)

    for engine, name, role in plan:
        model = os.path.join(args.models_dir, name)
        for t in threads:
            env = None
            if is_ours(engine):
                cmd = shlex.split(args.ours_cmd.format(model=shlex.quote(model), threads=t, p=args.p, n=args.n, r=args.r))
                cwd = args.ours_cwd
                if ":" in engine:
                    env = dict(os.environ, BITNET_KERNEL=engine.split(":", 1)[1])
            else:
                cmd = [os.path.join(args.build_dir, engine, "bin", "llama-bench"), "-m", model, "-p", str(args.p),
                       "-n", str(args.n), "-r", str(args.r), "-t", str(t), "-o", "json"]
                cwd = None
            busy, waited = wait_idle(args.max_busy, args.wait)
            raw = f"{engine.replace(':', '-')}-{files[name]['format']}-t{t}"
            rec = run_one(engine, cmd, os.path.join(raw_dir, raw), args.timeout, t, cwd, env)
            rec.update(engine=engine, role=role, file=name, format=files[name]["format"], threads=t,
                       others_cores_before=round(busy, 2), waited_s=round(waited), top_before=top_procs(4))
            results["runs"].append(rec)
            save()
    results["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    save()
    log(f"results: {out_path}")
    print(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
