"""``bitnet bench MODEL``: prompt-processing and generation speed, in the manner
of llama.cpp's llama-bench.

For each thread count (``-t 1,2,4`` runs three) the model is opened afresh and
two tests run ``-r`` times each, after one untimed warm-up of each:

  pp<P>  one call decoding P random token ids into an empty context
         (tokens/s = P / time)
  tg<N>  N single-token steps after an empty context (tokens/s = N / time)

Results are mean +- sample standard deviation over the repetitions. The token
ids are random (seeded): speed does not depend on them.

Also reported: load time (open + map the file, make the context), resident
memory right after loading (VmRSS, where /proc has it) and at peak
(getrusage), the kernel variant, and a roofline: the machine's memory read
bandwidth, measured with numpy summing a large array from as many threads,
divided by the weight bytes one generated token has to read, is the fastest
generation memory allows; the achieved fraction of it is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

BANDWIDTH_BYTES = 640 << 20  # > 512 MB: far past any cache
KERNELS = ("auto", "scalar", "avx2", "avx512", "neon", "wasm_simd")


# ---- argument parsing ----------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _thread_list(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list of thread counts, e.g. 1,2,4")
    return [_positive_int(p) for p in parts]


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="measure prompt processing and generation speed (like llama-bench)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="GGUF model file")
    p.add_argument(
        "-t", "--threads", type=_thread_list, action="append", metavar="N[,N...]",
        help=f"thread counts to run, comma-separated or repeated (default: {default_threads()}, the usable cores)",
    )
    p.add_argument("-p", "--n-prompt", type=_non_negative_int, default=128, metavar="P",
                   help="prompt tokens of the prefill test, 0 to skip it (default: 128)")
    p.add_argument("-n", "--n-gen", type=_non_negative_int, default=64, metavar="N",
                   help="generated tokens of the decode test, 0 to skip it (default: 64)")
    p.add_argument("-r", "--repetitions", type=_positive_int, default=3, metavar="R",
                   help="repetitions of each test (default: 3)")
    p.add_argument("--kernel", default=None, metavar="VARIANT",
                   help=f"kernel variant: {', '.join(KERNELS)} (default: $BITNET_KERNEL, else the default for this CPU: see bitnet info)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table (no progress bar)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    p.add_argument("--seed", type=int, default=0, help="seed of the random token ids (default: 0)")
    return p


# ---- measurements -----------------------------------------------------------------------


def vm_rss_bytes() -> int | None:
    """Resident set size now (Linux /proc/self/status VmRSS), else None."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process so far (getrusage), else None."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB elsewhere


def measure_bandwidth(n_threads: int, data: Any, repeat: int = 3) -> float:
    """Memory read bandwidth in bytes/s: n_threads threads each sum their share
    of ``data`` (numpy releases the GIL in the reduction); best of ``repeat``."""
    import numpy as np

    chunks = np.array_split(data, n_threads)
    best = math.inf
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        list(pool.map(lambda c: c[:1024].sum(), chunks))  # start the workers
        for _ in range(repeat):
            t0 = time.perf_counter()
            list(pool.map(np.sum, chunks))
            best = min(best, time.perf_counter() - t0)
    return data.nbytes / best


def weight_bytes_per_token(path: str) -> tuple[int | None, bool | None]:
    """(weight bytes a generated token reads, whether embeddings are tied)."""
    from ._gguf_index import bytes_per_token, read_tensor_table

    try:
        tensors = read_tensor_table(path)
    except (OSError, ValueError):
        return None, None
    return bytes_per_token(tensors), all(t.name != "output.weight" for t in tensors)


@dataclass
class Result:
    model: str
    description: str
    size_bytes: int
    kernel: str
    threads: int
    n_prompt: int
    n_gen: int
    reps: int
    pp_tok_s_mean: float | None
    pp_tok_s_sd: float | None
    tg_tok_s_mean: float | None
    tg_tok_s_sd: float | None
    load_s: float
    rss_after_load_bytes: int | None
    peak_rss_bytes: int | None
    bytes_per_token: int | None
    bandwidth_gbps: float | None = None
    roofline_tg_tok_s: float | None = None
    roofline_fraction: float | None = None
    system_info: str = ""


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _progress(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr, or a stand-in that does nothing."""
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="rep", file=sys.stderr, leave=False, dynamic_ncols=True)
        except ImportError:
            pass

    class _Null:
        def update(self, n: int = 1) -> None: ...
        def set_description(self, text: str) -> None: ...
        def close(self) -> None: ...

    return _Null()


def bench_threads(args: argparse.Namespace, n_threads: int, bar: Any, info: dict[str, Any]) -> Result:
    import numpy as np

    import bitnet

    p, n, reps = args.n_prompt, args.n_gen, args.repetitions
    t0 = time.perf_counter()
    try:
        model = bitnet.Model(args.model, n_ctx=max(p, n, 1), n_threads=n_threads, kernel=args.kernel)
    except bitnet.BitNetError as exc:  # name the option, not the C field
        message = str(exc).replace("bitnet_model_params.kernel:", "--kernel:")
        raise bitnet.BitNetError(message, exc.status, exc.status_name) from None
    load_s = time.perf_counter() - t0
    try:
        rss_after_load = vm_rss_bytes()
        rng = np.random.default_rng(args.seed)
        pp_ids = rng.integers(0, model.n_vocab, size=p, dtype=np.int32)
        tg_ids = rng.integers(0, model.n_vocab, size=n, dtype=np.int32)
        tg_steps = [tg_ids[i : i + 1] for i in range(n)]

        def prefill() -> float:
            model.reset()
            start = time.perf_counter()
            model.eval(pp_ids)
            return time.perf_counter() - start

        def decode(steps: list[Any]) -> float:
            model.reset()
            start = time.perf_counter()
            for step in steps:
                model.eval(step)
            return time.perf_counter() - start

        if not args.no_warmup:
            bar.set_description(f"t={n_threads} warm-up")
            if p:
                prefill()
            if n:
                decode(tg_steps[:1])
        pp_rates: list[float] = []
        tg_rates: list[float] = []
        bar.set_description(f"t={n_threads}")
        for _ in range(reps):
            if p:
                pp_rates.append(p / prefill())
            if n:
                tg_rates.append(n / decode(tg_steps))
            bar.update(1)
        kernel = model.kernel
        description = model.description
        name = model.metadata.get("general.name")
    finally:
        model.close()
    pp_mean, pp_sd = _mean_sd(pp_rates)
    tg_mean, tg_sd = _mean_sd(tg_rates)
    return Result(
        model=str(name) if name else os.path.basename(args.model),
        description=description,
        size_bytes=info["size_bytes"],
        kernel=kernel,
        threads=n_threads,
        n_prompt=p,
        n_gen=n,
        reps=reps,
        pp_tok_s_mean=pp_mean,
        pp_tok_s_sd=pp_sd,
        tg_tok_s_mean=tg_mean,
        tg_tok_s_sd=tg_sd,
        load_s=load_s,
        rss_after_load_bytes=rss_after_load,
        peak_rss_bytes=max((v for v in (peak_rss_bytes(), rss_after_load) if v is not None), default=None),
        bytes_per_token=info["bytes_per_token"],
        system_info=info["system_info"],
    )


def add_roofline(results: list[Result]) -> None:
    """Measure bandwidth once per thread count (after the model runs, so its
    buffer does not count in their peak RSS) and fill the roofline fields."""
    import numpy as np

    data = np.ones(BANDWIDTH_BYTES // 8, dtype=np.int64)  # written, so really resident
    try:
        cache: dict[int, float] = {}
        for r in results:
            if r.threads not in cache:
                cache[r.threads] = measure_bandwidth(r.threads, data)
            bw = cache[r.threads]
            r.bandwidth_gbps = bw / 1e9
            if r.bytes_per_token:
                r.roofline_tg_tok_s = bw / r.bytes_per_token
                if r.tg_tok_s_mean is not None:
                    r.roofline_fraction = r.tg_tok_s_mean / r.roofline_tg_tok_s
    finally:
        del data
        gc.collect()


# ---- output -----------------------------------------------------------------------------


def _size(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _rate(mean: float | None, sd: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.2f} ± {sd or 0.0:.2f}"


def _table(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        out = []
        for cell, w, a in zip(cells, widths, align):
            out.append(cell.rjust(w) if a == "r" else cell.ljust(w))
        return "| " + " | ".join(out) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if a == "r" else "-" * w for w, a in zip(widths, align)) + " |"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def format_human(results: list[Result], path: str, tied: bool | None = None) -> str:
    first = results[0]
    lines = [
        f"model:  {path} ({_size(first.size_bytes)})",
        f"        {first.description}",
        f"system: {first.system_info}",
        f"kernel: {first.kernel}",
        "",
    ]
    rows = []
    for r in results:
        common = [r.model, _size(r.size_bytes), r.kernel, str(r.threads)]
        if r.n_prompt:
            rows.append(common + [f"pp{r.n_prompt}", _rate(r.pp_tok_s_mean, r.pp_tok_s_sd)])
        if r.n_gen:
            rows.append(common + [f"tg{r.n_gen}", _rate(r.tg_tok_s_mean, r.tg_tok_s_sd)])
    lines.append(_table(["model", "size", "kernel", "threads", "test", "t/s"], list("lrlrlr"), rows))
    lines.append("")
    rows = []
    for r in results:
        roof = "n/a" if r.roofline_tg_tok_s is None else f"{r.roofline_tg_tok_s:.2f}"
        frac = "n/a" if r.roofline_fraction is None else f"{100 * r.roofline_fraction:.0f}%"
        bw = "n/a" if r.bandwidth_gbps is None else f"{r.bandwidth_gbps:.1f} GB/s"
        rows.append([str(r.threads), f"{r.load_s:.3f} s", _size(r.rss_after_load_bytes), _size(r.peak_rss_bytes),
                     bw, roof, frac])
    lines.append(_table(["threads", "load", "RSS after load", "peak RSS", "mem read BW", "roofline tg t/s",
                         "tg/roofline"], list("rrrrrrr"), rows))
    if first.bytes_per_token:
        what = ("tied embeddings: the output projection reads token_embd in full" if tied
                else "token_embd: one row; the output projection in full")
        lines.append(
            f"roofline: a generated token reads {_size(first.bytes_per_token)} of weights ({what}); "
            "at the measured memory read bandwidth that allows at most 'roofline tg t/s'"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import bitnet

    threads = [t for group in (args.threads or [[default_threads()]]) for t in group]
    threads = list(dict.fromkeys(threads))  # keep order, drop repeats
    if args.n_prompt == 0 and args.n_gen == 0:
        print("bitnet bench: error: -p and -n are both 0: nothing to measure", file=sys.stderr)
        return 2
    size_bytes = os.path.getsize(args.model)  # OSError for a missing file: reported by cli.main
    per_token, tied = weight_bytes_per_token(args.model)
    info = {
        "size_bytes": size_bytes,
        "bytes_per_token": per_token,
        "tied": tied,
        "system_info": bitnet.system_info(),
    }
    show_bar = not args.json and sys.stderr.isatty()
    bar = _progress(len(threads) * args.repetitions, show_bar)
    try:
        results = [bench_threads(args, t, bar, info) for t in threads]
    finally:
        bar.close()
    add_roofline(results)
    if args.json:
        out = {
            "bitnet_version": bitnet.__version__,
            "model_path": os.path.abspath(args.model),
            "results": [asdict(r) for r in results],
        }
        print(json.dumps(out, indent=2))
    else:
        print(format_human(results, args.model, info["tied"]))
    return 0
