#!/usr/bin/env python3
"""Throughput and time to first token of `bitnet serve` with 1, 4 and 8 concurrent streams.

    python benchmarks/server/bench_serve.py MODEL [--streams 1,4,8] [--tokens 64] [--threads 2] [--json]
    python benchmarks/server/bench_serve.py --synth 2b4t --streams 1,4,8 --tokens 64 --threads 2

Starts ONE `python -m bitnet serve MODEL --slots MAX(streams)` on a free port of
127.0.0.1 (nothing else is contacted), waits for /health, warms up with one
short request, then for each concurrency level N runs N client threads that
send streaming greedy /v1/completions requests back to back (token-id
prompts of about --prompt-tokens tokens, `max_tokens` = --tokens,
`stream_options.include_usage` so that a request that ends early at an end
token is counted with its real length). Per level it reports:

- aggregate tok/s: completion tokens of all requests / wall time of the level;
- per-stream tok/s: mean over completed requests of tokens / (request sent ->
  last chunk), the speed one client sees, prompt processing included;
- TTFT p50/p99: request sent -> first SSE chunk carrying text (the finish
  chunk when a request produced no text), prompt processing and any wait for
  the batch step included;
- ratio: aggregate tok/s / that of the 1-stream level;
- other load: cores busy with processes other than the server and this
  script during the level (from /proc/stat), so a shared machine shows.

--synth 2b4t writes a synthetic BitNet-b1.58-2B-4T-shaped I2_S model with
tools/synth_model.py (random ternary weights, F16 tied embeddings, a
placeholder SentencePiece vocabulary; ~1.2 GB) into tests/.cache/bench/
once and reuses it. --time-limit bounds the run from the server start (writing
the synthetic model is not counted): when it is reached the server is
stopped, in-flight requests end, and the levels measured so far are reported
(the interrupted level marked partial). The server is stopped at the end, on
errors and on Ctrl-C. Not a test: one run, numbers vary with machine load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "tests" / ".cache" / "bench"
GOAL_STREAMS, GOAL_RATIO = 8, 2.5


def log(msg: str) -> None:
    print(f"[bench_serve] {msg}", file=sys.stderr, flush=True)


# ---- the model -------------------------------------------------------------------------


def synth_model(shape: str) -> Path:
    """tools/synth_model.py's SHAPE as I2_S with a placeholder vocabulary, cached.

    The vocabulary is needed: the server turns every token into text."""
    out = CACHE / f"synth-{shape}-i2_s-spm.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    log(f"writing {out} (once) ...")
    subprocess.run([sys.executable, str(ROOT / "tools" / "synth_model.py"), str(tmp), "--shape", shape,
                    "--format", "I2_S", "--vocab", "spm"], check=True)
    tmp.replace(out)
    return out


def model_info(path: Path) -> dict:
    import bitnet

    with bitnet.Model(str(path), n_ctx=8, n_threads=1) as m:
        return {"n_vocab": m.n_vocab, "bos_id": m.bos_id, "kernel": m.kernel}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---- CPU accounting (Linux; zeros elsewhere) ------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_s() -> float:
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    guest = sum(v[8:10]) if len(v) > 9 else 0
    return (sum(v) - idle - guest) / CLK_TCK


def proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0.0


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


# ---- the server ------------------------------------------------------------------------------


class Server:
    """`python -m bitnet serve` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, model: Path, slots: int, n_ctx: int, threads: int | None, log_path: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "bitnet", "serve", str(model), "--host", "127.0.0.1", "--port", str(self.port),
               "--slots", str(slots), "-c", str(n_ctx), "--max-queue", str(max(64, 2 * slots)),
               "--model-name", "bench"]
        if threads:
            cmd += ["-t", str(threads)]
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_healthy(self, deadline: float) -> None:
        import httpx

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the server did not become healthy before the time limit")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # uvicorn's graceful shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---- the clients -----------------------------------------------------------------------------


@dataclass
class Result:
    tokens: int = 0          # completion tokens (usage, else text chunks seen)
    ttft_s: float | None = None
    total_s: float | None = None  # request sent -> last chunk
    complete: bool = False
    error: str | None = None


def one_request(client, url: str, prompt: list[int], max_tokens: int, stop: threading.Event) -> Result:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    r = Result()
    chunks = 0
    t0 = time.perf_counter()
    t_first = t_last = None
    try:
        with client.stream("POST", url + "/v1/completions", json=body) as resp:
            if resp.status_code != 200:
                resp.read()
                r.error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                return r
            for line in resp.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    r.complete = True
                    break
                obj = json.loads(data)
                if "error" in obj:
                    r.error = str(obj["error"].get("message"))
                    break
                if obj.get("usage"):
                    r.tokens = int(obj["usage"]["completion_tokens"])
                for ch in obj.get("choices", []):
                    now = time.perf_counter()
                    if ch.get("text") or (ch.get("finish_reason") and t_first is None):
                        t_first = t_first or now
                        t_last = now
                        chunks += bool(ch.get("text"))
                if stop.is_set():
                    break
    except Exception as exc:  # noqa: BLE001 - the server stopped at the time limit, or a network error
        if not stop.is_set():
            r.error = f"{type(exc).__name__}: {exc}"
    if not r.complete and not r.tokens:
        r.tokens = chunks  # an interrupted request: the text chunks seen (about one per token)
    if t_first is not None:
        r.ttft_s = t_first - t0
        r.total_s = t_last - t0
    return r


def make_prompt(rng: random.Random, n: int, info: dict) -> list[int]:
    hi = min(info["n_vocab"], 32000)
    ids = [rng.randrange(300 if hi > 1000 else 3, hi) for _ in range(n)]
    if info["bos_id"] is not None and info["bos_id"] >= 0:
        ids[0] = info["bos_id"]
    return ids


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_level(server: Server, streams: int, requests: int, args, info: dict, deadline: float) -> dict:
    import httpx

    rng = random.Random(1000 + streams)
    prompts = [make_prompt(rng, args.prompt_tokens, info) for _ in range(requests)]
    todo = list(range(requests))
    lock = threading.Lock()
    stop = threading.Event()
    results: list[Result] = []

    def worker() -> None:
        with httpx.Client(timeout=httpx.Timeout(None, connect=10)) as client:
            while not stop.is_set():
                with lock:
                    if not todo:
                        return
                    i = todo.pop(0)
                res = one_request(client, server.url, prompts[i], args.tokens, stop)
                with lock:
                    results.append(res)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(streams)]
    b0, s0, o0 = machine_busy_s(), proc_cpu_s(server.proc.pid), own_cpu_s()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    partial = interrupted = False
    try:
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                partial = True
                log(f"time limit reached during the {streams}-stream level; stopping the server")
                break
    except KeyboardInterrupt:
        partial = interrupted = True
        log(f"interrupted during the {streams}-stream level; stopping the server")
    if partial:  # stop the server so that every stream ends now
        stop.set()
        server.stop()
        for t in threads:
            t.join(15)
    wall = time.perf_counter() - t0
    busy = machine_busy_s() - b0
    ours = (proc_cpu_s(server.proc.pid) - s0 if server.proc.poll() is None else 0.0) + own_cpu_s() - o0
    partial = partial or stop.is_set()
    errors = [r.error for r in results if r.error]
    done = [r for r in results if r.complete]
    tokens = sum(r.tokens for r in results)
    ttfts = [r.ttft_s for r in results if r.ttft_s is not None]
    speeds = [r.tokens / r.total_s for r in done if r.tokens and r.total_s]
    return {
        "streams": streams,
        "requests": requests,
        "completed": len(done),
        "errors": errors[:5],
        "n_errors": len(errors),
        "completion_tokens": tokens,
        "wall_s": round(wall, 3),
        "agg_tok_s": tokens / wall if wall > 0 else 0.0,
        "per_stream_tok_s": sum(speeds) / len(speeds) if speeds else None,
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p99_s": percentile(ttfts, 99),
        "partial": partial,
        "interrupted": interrupted,
        "per_request": [{"tokens": r.tokens, "ttft_s": r.ttft_s, "total_s": r.total_s, "complete": r.complete}
                        for r in results],
        # busy time of the whole machine not explained by the server or this script
        # (only meaningful when the server was still running at the end of the level)
        "other_load_cores": max(0.0, (busy - ours) / wall) if wall > 0 and not partial else None,
    }


# ---- main ------------------------------------------------------------------------------------


def parse_streams(text: str) -> list[int]:
    try:
        xs = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not xs or any(x <= 0 for x in xs):
        raise argparse.ArgumentTypeError(f"stream counts must be positive: {text!r}")
    return xs


def fmt(x, spec: str, scale: float = 1.0) -> str:
    return "-" if x is None else format(x * scale, spec)


def print_table(report: dict) -> None:
    m = report
    print(f"model: {m['model']} ({m['model_mb']:.0f} MiB, kernel {m['kernel']})")
    print(f"server: {m['threads']} threads, --slots {m['slots']}; {m['tokens']} tokens per request, "
          f"~{m['prompt_tokens']}-token prompts, greedy")
    print(f"CPU: {m['cpu']} ({m['nproc']} CPUs), load average at start {m['loadavg_start']}")
    print()
    head = (f"{'streams':>7} | {'requests':>8} | {'aggregate tok/s':>15} | {'per-stream tok/s':>16} | "
            f"{'TTFT p50 ms':>11} | {'TTFT p99 ms':>11} | {'vs 1 stream':>11} | {'other load':>10}")
    print(head)
    print("-" * len(head))
    for lv in m["levels"]:
        req = f"{lv['completed']}/{lv['requests']}"
        ratio = fmt(lv.get("ratio_vs_1"), ".2f") + ("x" if lv.get("ratio_vs_1") is not None else "")
        other = fmt(lv["other_load_cores"], ".2f")
        note = f"  (partial: {'interrupted' if lv['interrupted'] else 'time limit'})" if lv["partial"] else ""
        if lv["n_errors"]:
            note += f"  ({lv['n_errors']} errors: {lv['errors'][0]})"
        print(f"{lv['streams']:>7} | {req:>8} | {lv['agg_tok_s']:15.2f} | {fmt(lv['per_stream_tok_s'], '16.2f'):>16} | "
              f"{fmt(lv['ttft_p50_s'], '11.0f', 1000):>11} | {fmt(lv['ttft_p99_s'], '11.0f', 1000):>11} | "
              f"{ratio:>11} | {other:>10}{note}")
    print()
    g = m["goal"]
    if g["ratio"] is None:
        print(f"goal ({GOAL_STREAMS} streams >= {GOAL_RATIO}x the aggregate tok/s of 1 stream): not measured "
              f"(needs complete 1- and {GOAL_STREAMS}-stream levels)")
    else:
        print(f"goal ({GOAL_STREAMS} streams >= {GOAL_RATIO}x the aggregate tok/s of 1 stream): "
              f"{'met' if g['met'] else 'NOT met'} ({g['ratio']:.2f}x)")
    if m["interrupted"]:
        print("stopped early: interrupted")
    elif m["stopped_early"]:
        print(f"stopped early: --time-limit {m['time_limit_s']} s reached")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", metavar="MODEL", nargs="?", type=Path, help="a GGUF model file")
    ap.add_argument("--synth", choices=["2b4t", "tiny"],
                    help="use a synthetic I2_S model of this tools/synth_model.py shape instead (cached)")
    ap.add_argument("--streams", type=parse_streams, default=[1, 4, 8],
                    help="concurrency levels, comma-separated (default 1,4,8)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens generated per request (default 64)")
    ap.add_argument("--prompt-tokens", type=int, default=32, help="prompt length in tokens (default 32)")
    ap.add_argument("--requests-per-level", type=int, default=None, metavar="N",
                    help="requests per level (default: 2 x the stream count, at least 4)")
    ap.add_argument("-t", "--threads", type=int, default=None, help="server threads (default: the engine's)")
    ap.add_argument("--time-limit", type=float, default=1800.0, metavar="SECONDS",
                    help="bound on the whole run from the server start (default 1800); "
                         "partial results when reached")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)
    if (args.model is None) == (args.synth is None):
        ap.error("give MODEL or --synth SHAPE (one of them)")
    if args.tokens < 1 or args.prompt_tokens < 1:
        ap.error("--tokens and --prompt-tokens must be positive")
    if importlib.util.find_spec("httpx") is None:
        ap.error("needs httpx (pip install 'libbitnet[server]' httpx)")

    model = synth_model(args.synth) if args.synth else args.model
    if not model.is_file():
        ap.error(f"{model}: not a file")
    info = model_info(model)
    start = time.monotonic()
    deadline = start + args.time_limit
    slots = max(args.streams)
    n_ctx = args.prompt_tokens + args.tokens + 8
    report: dict = {
        "model": str(model), "model_mb": model.stat().st_size / 2**20, "kernel": info["kernel"],
        "threads": args.threads or "default", "slots": slots, "tokens": args.tokens,
        "prompt_tokens": args.prompt_tokens, "cpu": cpu_name(), "nproc": os.cpu_count(),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?",
        "time_limit_s": args.time_limit, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "levels": [], "stopped_early": False, "interrupted": False,
    }
    def on_term(signum, frame):  # kill PID: stop the server as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        server = Server(model, slots, n_ctx, args.threads, Path(tmp) / "server.log")
        log(f"server: {' '.join(server.cmd)}")
        try:
            try:
                server.wait_healthy(deadline)
            except TimeoutError:
                report["stopped_early"] = True
                log("time limit reached while the model loaded")
            if not report["stopped_early"]:
                report["load_s"] = round(time.monotonic() - start, 2)
                log(f"healthy after {report['load_s']} s; warming up")
                warm = run_level(server, 1, 1, argparse.Namespace(prompt_tokens=args.prompt_tokens,
                                                                   tokens=min(4, args.tokens)), info, deadline)
                if warm["partial"]:
                    report["stopped_early"] = True
                    report["interrupted"] = warm["interrupted"]
                elif warm["n_errors"]:
                    raise RuntimeError(f"the warm-up request failed: {warm['errors'][0]}\n{server.log_tail()}")
            for n in args.streams:
                if report["stopped_early"] or time.monotonic() >= deadline:
                    report["stopped_early"] = True
                    break
                requests = args.requests_per_level or max(4, 2 * n)
                log(f"{n} streams, {requests} requests ...")
                lv = run_level(server, n, requests, args, info, deadline)
                report["levels"].append(lv)
                log(f"  {lv['agg_tok_s']:.2f} tok/s aggregate, {lv['completed']}/{requests} requests in "
                    f"{lv['wall_s']:.1f} s")
                if lv["partial"]:
                    report["stopped_early"] = True
                    report["interrupted"] = lv["interrupted"]
                    break
        except KeyboardInterrupt:
            log("interrupted")
            report["stopped_early"] = True
            report["interrupted"] = True
        finally:
            server.stop()
    base = next((lv for lv in report["levels"] if lv["streams"] == 1 and not lv["partial"]), None)
    for lv in report["levels"]:
        lv["ratio_vs_1"] = lv["agg_tok_s"] / base["agg_tok_s"] if base and base["agg_tok_s"] > 0 else None
    top = next((lv for lv in report["levels"] if lv["streams"] == GOAL_STREAMS and not lv["partial"]), None)
    ratio = top["ratio_vs_1"] if top and base else None
    report["goal"] = {"streams": GOAL_STREAMS, "min_ratio": GOAL_RATIO, "ratio": ratio,
                      "met": None if ratio is None else ratio >= GOAL_RATIO}
    report["elapsed_s"] = round(time.monotonic() - start, 2)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 130 if report["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
