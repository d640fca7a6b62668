"""benchmarks/peers/run_peers.py and report.py, run on stand-ins.

The real peers take an hour to build, so here a shell script plays the peer's
llama-bench and a Python one-liner plays our `bitnet bench --json`; what is
checked is the plumbing: which engine runs on which file, that --ours-kernels
runs ours once per kernel set with BITNET_KERNEL set, and that the report
prints one ratio per kernel set against the peer on the same file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

PEERS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "peers"

# run_peers.py reads /proc/stat and uses the resource module; the peers it drives build on Linux.
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the peer scripts are Linux-only")


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"peers_{name}", PEERS_DIR / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# llama-bench -o json prints one record per test (pp, then tg). A Python script
# (this interpreter in its #! line): the wheel check runs the tests with a PATH
# that holds no coreutils.
FAKE_LLAMA_BENCH = f"""#!{sys.executable}
print('[{{"n_prompt": 128, "n_gen": 0, "avg_ts": 10.0, "stddev_ts": 0.5, "samples_ts": [10.0]}},'
      ' {{"n_prompt": 0, "n_gen": 64, "avg_ts": 5.0, "stddev_ts": 0.1, "samples_ts": [5.0]}}]')
"""

# ours: pp 20 / tg 6 with avx2, pp 30 / tg 9 with avx512, as `bitnet bench --json` shapes it
FAKE_OURS = """import json, os, sys
kernel = os.environ.get("BITNET_KERNEL", "auto")
pp, tg = {"avx2": (20.0, 6.0), "avx512": (30.0, 9.0)}.get(kernel, (1.0, 1.0))
print(json.dumps({"results": [{"threads": int(sys.argv[1]), "kernel": kernel, "pp_tok_s_mean": pp,
                               "pp_tok_s_sd": 0.0, "tg_tok_s_mean": tg, "tg_tok_s_sd": 0.0}]}))
"""


@pytest.fixture
def peer_setup(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    (models / "m-TQ2_0.gguf").write_bytes(b"stand-in")
    manifest = {"files": {"m-TQ2_0.gguf": {"format": "TQ2_0", "producer": "upstream llama-quantize"}}}
    (models / "models.json").write_text(json.dumps(manifest))
    bench = tmp_path / "build" / "upstream" / "bin" / "llama-bench"
    bench.parent.mkdir(parents=True)
    bench.write_text(FAKE_LLAMA_BENCH)
    bench.chmod(bench.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def run_peers(tmp: Path, *extra: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    rp = load("run_peers")
    monkeypatch.setattr(rp, "others_busy", lambda sample_s=3.0: 0.0)  # no 3 s idle sampling per run
    out = tmp / "results" / "peers-test.json"
    (tmp / "fake_ours.py").write_text(FAKE_OURS)
    ours_cmd = f"{sys.executable} {tmp / 'fake_ours.py'} {{threads}}"
    rc = rp.main(["--models-dir", str(tmp / "models"), "--build-dir", str(tmp / "build"), "--results-dir",
                  str(tmp / "results"), "--out", str(out), "--threads", "1", "--ours-cmd", ours_cmd, *extra])
    assert rc == 0
    return json.loads(out.read_text())


def test_ours_kernels_run_once_per_kernel_set_with_bitnet_kernel_set(peer_setup: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BITNET_KERNEL", raising=False)
    res = run_peers(peer_setup, "--ours-kernels", "avx2,avx512", monkeypatch=monkeypatch)
    by_engine = {r["engine"]: r for r in res["runs"]}
    assert set(by_engine) == {"ours:avx2", "ours:avx512", "upstream"}
    assert by_engine["ours:avx2"]["parsed"]["kernel"] == "avx2"
    assert by_engine["ours:avx512"]["parsed"]["kernel"] == "avx512"
    assert by_engine["ours:avx512"]["parsed"]["tg_ts"] == 9.0
    assert by_engine["upstream"]["parsed"]["tg_ts"] == 5.0
    # the raw output of each variant is kept apart
    assert by_engine["ours:avx2"]["raw"] != by_engine["ours:avx512"]["raw"]


def test_without_ours_kernels_ours_runs_once_with_the_engines_pick(peer_setup: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BITNET_KERNEL", raising=False)
    res = run_peers(peer_setup, monkeypatch=monkeypatch)
    assert sorted(r["engine"] for r in res["runs"]) == ["ours", "upstream"]
    assert next(r for r in res["runs"] if r["engine"] == "ours")["parsed"]["kernel"] == "auto"


def test_report_gives_one_ratio_per_kernel_set(peer_setup: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BITNET_KERNEL", raising=False)
    run_peers(peer_setup, "--ours-kernels", "avx2,avx512", monkeypatch=monkeypatch)
    capsys.readouterr()
    assert load("report").main([str(peer_setup / "results" / "peers-test.json")]) == 0
    table = capsys.readouterr().out
    upstream_row = next(ln for ln in table.splitlines() if ln.startswith("| TQ2_0 |") and "llama.cpp" in ln)
    # pp: 20/10 and 30/10; tg: 6/5 and 9/5
    assert "2.00 (avx2), 3.00 (avx512)" in upstream_row
    assert "1.20 (avx2), 1.80 (avx512)" in upstream_row
    assert "| ours, avx512 |" in table
    # the summary picks the best variant and names it
    assert "1.80 (TQ2_0, avx512)" in table


def test_dry_run_lists_each_variant(peer_setup: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    rp = load("run_peers")
    rc = rp.main(["--models-dir", str(peer_setup / "models"), "--build-dir", str(peer_setup / "build"),
                  "--ours-cmd", "true", "--ours-kernels", "scalar,avx2", "--dry-run"])
    assert rc == 0
    plan = capsys.readouterr().out.split()
    assert "ours:scalar" in plan and "ours:avx2" in plan and "upstream" in plan
    assert not os.path.exists(peer_setup / "results")
