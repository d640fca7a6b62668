"""The ``bitnet`` command line (``python -m bitnet``) and ``bitnet bench``, on a
tiny synthetic model; plus the Python API they use (Model(kernel=...),
Model.eval/reset, bitnet.system_info, the GGUF tensor table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bitnet
from bitnet._gguf_index import bytes_per_token, read_tensor_table

ROOT = Path(__file__).resolve().parents[1]
PKG_PARENT = str(Path(bitnet.__file__).resolve().parents[1])  # installed or in-tree bindings_py
RESULT_KEYS = {
    "model", "size_bytes", "kernel", "threads", "n_prompt", "n_gen", "reps", "pp_tok_s_mean", "pp_tok_s_sd",
    "tg_tok_s_mean", "tg_tok_s_sd", "load_s", "peak_rss_bytes", "bandwidth_gbps", "roofline_tg_tok_s",
    "system_info",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("cli") / "tiny.gguf"
    subprocess.run([sys.executable, str(ROOT / "tools" / "synth_model.py"), str(path), "--shape", "tiny",
                    "--format", "I2_S"], check=True, capture_output=True)
    return str(path)


def bitnet_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_PARENT, env.get("PYTHONPATH")) if p)
    env.pop("BITNET_KERNEL", None)
    return subprocess.run([sys.executable, "-m", "bitnet", *args], capture_output=True, text=True, env=env,
                          timeout=120)


# ---- the command line ---------------------------------------------------------------------


def test_help_lists_bench() -> None:
    r = bitnet_cli("--help")
    assert r.returncode == 0, r.stderr
    assert "bench" in r.stdout and "info" in r.stdout


def test_bench_json_two_thread_counts(tiny: str) -> None:
    r = bitnet_cli("bench", tiny, "-p", "8", "-n", "4", "-r", "2", "-t", "1,2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    results = out["results"]
    assert [x["threads"] for x in results] == [1, 2]
    for x in results:
        assert RESULT_KEYS <= set(x), RESULT_KEYS - set(x)
        assert (x["n_prompt"], x["n_gen"], x["reps"]) == (8, 4, 2)
        assert x["pp_tok_s_mean"] > 0 and x["tg_tok_s_mean"] > 0
        assert x["pp_tok_s_sd"] >= 0 and x["tg_tok_s_sd"] >= 0
        assert x["size_bytes"] == os.path.getsize(tiny)
        assert x["bandwidth_gbps"] > 0 and x["roofline_tg_tok_s"] > 0
        assert x["peak_rss_bytes"] > 0 and x["load_s"] > 0
        assert x["kernel"] and x["system_info"].startswith("kernels:")
    assert "\x1b" not in r.stderr and "rep/s" not in r.stderr  # no progress bar with --json


def test_bench_kernel_scalar_table(tiny: str) -> None:
    r = bitnet_cli("bench", tiny, "-p", "4", "-n", "0", "-r", "1", "-t", "1", "--kernel", "scalar")
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| synthetic-tiny")]
    assert len(rows) == 1 and "| pp4 " in rows[0]  # -n 0: no tg row
    assert "| scalar " in rows[0] and "kernel: scalar" in r.stdout
    assert "roofline" in r.stdout and "Traceback" not in r.stderr


def test_bench_unknown_kernel(tiny: str) -> None:
    r = bitnet_cli("bench", tiny, "--kernel", "nonsense", "-p", "4", "-n", "2", "-r", "1", "-t", "1")
    assert r.returncode == 1
    assert r.stderr.startswith("bitnet: error: ")
    assert "nonsense" in r.stderr and "scalar" in r.stderr and "avx2" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_bench_missing_model(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.gguf"
    r = bitnet_cli("bench", str(missing), "-p", "4", "-n", "2", "-r", "1")
    assert r.returncode == 1
    assert r.stderr.strip() == f"bitnet: error: {missing}: No such file or directory"


def test_bench_usage_errors(tiny: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bitnet.cli import main

    for args in (["-t", "0"], ["-t", "1,x"], ["-r", "0"], ["-p", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(["bench", tiny, *args])
        assert exc.value.code == 2, args
    assert main(["bench", tiny, "-p", "0", "-n", "0"]) == 2
    assert main([]) == 2  # no command
    err = capsys.readouterr().err
    assert "must be positive" in err and "nothing to measure" in err and "Traceback" not in err


def test_info(tiny: str) -> None:
    r = bitnet_cli("info", tiny, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["version"] == bitnet.__version__
    assert info["model"]["name"] == "synthetic-tiny-I2_S"


# ---- the Python API underneath ---------------------------------------------------------------


def test_system_info() -> None:
    info = bitnet.system_info()
    assert info.startswith("kernels: ") and "scalar" in info and "cpu: " in info
    assert "\n" not in info and "system_info" in bitnet.__all__


def test_model_kernel(tiny: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BITNET_KERNEL", raising=False)
    with bitnet.Model(tiny, n_ctx=16, kernel="scalar") as m:
        assert m.kernel == "scalar"
        want = m.logits([1, 2, 3])
    with bitnet.Model(tiny, n_ctx=16) as m:  # the default variant, which system_info names
        assert f"(default {m.kernel})" in bitnet.system_info()
        assert (m.logits([1, 2, 3]) == want).all()  # every variant is exact
    with pytest.raises(bitnet.BitNetError, match="nonsense"):
        bitnet.Model(tiny, kernel="nonsense")


def test_model_eval_reset(tiny: str) -> None:
    with bitnet.Model(tiny, n_ctx=16) as m:
        assert m.n_past == 0
        m.eval([1, 2, 3])
        m.eval([4])
        assert m.n_past == 4
        m.eval([])
        assert m.n_past == 4
        with pytest.raises(ValueError):
            m.eval([m.n_vocab])
        assert m.n_past == 4
        with pytest.raises(bitnet.BitNetError):
            m.eval(list(range(13)))  # 4 + 13 > n_ctx: the context keeps its sequence
        assert m.n_past == 4
        m.reset()
        assert m.n_past == 0
        m.eval([1, 2, 3, 4])
        assert m.n_past == 4
        m.logits([5, 6])  # logits() starts a fresh sequence
        assert m.n_past == 2


def test_gguf_tensor_table(tiny: str) -> None:
    tensors = read_tensor_table(tiny)
    assert len(tensors) == 2 + 11 * 2  # token_embd, output_norm, 11 per layer
    embd = tensors[0]
    assert (embd.name, embd.type_id, embd.shape, embd.nbytes) == ("token_embd.weight", 1, (256, 512), 256 * 512 * 2)
    assert tensors[-1].offset + tensors[-1].nbytes == os.path.getsize(tiny)
    # tied embeddings: the output projection reads token_embd in full
    assert bytes_per_token(tensors) == sum(t.nbytes for t in tensors)
    untied = tensors + [tensors[0].__class__("output.weight", 1, (256, 512), 0, 256 * 512 * 2)]
    assert bytes_per_token(untied) == sum(t.nbytes for t in tensors) - 256 * 512 * 2 + 256 * 2 + 256 * 512 * 2
