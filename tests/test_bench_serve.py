"""Smoke test of benchmarks/server/bench_serve.py (issue 7): it runs end to end
on the embedded default model and --time-limit stops it with partial results.

No timing assertion: the numbers belong in benchmarks/server/README.md, not in CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("bitnet", reason="the bitnet engine package is not importable (not built yet?)")
pytest.importorskip("starlette", reason="the server extra is not installed")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from bitnet.default_model import default_model_path  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "server" / "bench_serve.py"


def bench(*args: str, timeout: float = 120) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPT), str(default_model_path()), *args, "--threads", "1", "--json"],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_two_levels():
    report = bench("--streams", "1,2", "--tokens", "8", "--time-limit", "60")
    assert not report["stopped_early"]
    assert [lv["streams"] for lv in report["levels"]] == [1, 2]
    for lv in report["levels"]:
        assert not lv["partial"] and lv["n_errors"] == 0, lv
        assert lv["completed"] == lv["requests"] > 0
        assert lv["completion_tokens"] > 0
        assert lv["agg_tok_s"] > 0 and lv["per_stream_tok_s"] > 0
        assert lv["ttft_p50_s"] > 0 and lv["ttft_p99_s"] >= lv["ttft_p50_s"]
        assert lv["ratio_vs_1"] > 0
    assert report["goal"]["ratio"] is None  # no 8-stream level


def test_time_limit_gives_partial_results():
    limit = 10.0
    t0 = time.monotonic()
    # far more requests than fit in the limit: the first level is cut short
    report = bench("--streams", "1,2", "--tokens", "16", "--requests-per-level", "100000",
                   "--time-limit", str(limit))
    assert time.monotonic() - t0 < limit + 30
    assert report["stopped_early"]
    assert report["elapsed_s"] < limit + 20
    levels = report["levels"]
    assert len(levels) == 1 and levels[0]["streams"] == 1, levels
    assert levels[0]["partial"]
    assert 0 < levels[0]["completed"] < levels[0]["requests"]
    assert levels[0]["completion_tokens"] > 0
