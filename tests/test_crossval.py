"""Cross-validation against pinned upstream llama.cpp (crossval/, see its README.md).

Runs crossval/run_crossval.py once (a subprocess: llama.cpp and our engine each in their
own library, llama.cpp's log kept out of pytest's output) and checks its report:
every (family, format, upstream attention path) compared, every case within
crossval/metrics.py's THRESHOLDS (e.g. F32: cosine >= 0.99999, max|Δ| <= 0.02 std, greedy
ids identical unless upstream itself has a near-tie; the measurements behind each bound are
in metrics.py), and upstream still refusing what the README says it cannot run.

Needs ``llama_cpp`` (``python crossval/install_llama_cpp.py`` builds it from the pinned
sdist): skipped without it, except under .ci/run (BITNET_CI=1), which installs it first,
so there a missing llama_cpp fails. The unit tests of the comparison itself run always.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CROSSVAL = ROOT / "crossval"
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run installs llama_cpp: missing is a failure there
RUN_TIMEOUT_S = 600  # measured ~6 s on 2 cores (+ model files on first use); margin for slow CI machines
FAMILIES = ("bitnet", "tern-llama")
FORMATS = ("F32", "F16", "TQ1_0", "TQ2_0")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"crossval_{name}", CROSSVAL / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


metrics = _load("metrics")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    if importlib.util.find_spec("llama_cpp") is None:
        (pytest.fail if STRICT else pytest.skip)(
            "llama_cpp (upstream llama.cpp) is not importable: run `python crossval/install_llama_cpp.py`")
    if importlib.util.find_spec("bitnet") is None:
        (pytest.fail if STRICT else pytest.skip)("the bitnet package is not importable (not built yet?)")
    out = tmp_path_factory.mktemp("crossval")
    proc = subprocess.run([sys.executable, str(CROSSVAL / "run_crossval.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=ROOT)
    if proc.returncode not in (0, 1) or not (out / "report.json").exists():
        pytest.fail(f"run_crossval.py exited with {proc.returncode}:\n{proc.stderr[-8000:]}", pytrace=False)
    data = json.loads((out / "report.json").read_text())
    data["_returncode"] = proc.returncode
    data["_markdown"] = (out / "report.md").read_text()
    return data


def test_every_family_and_format_compared(report):
    # both of upstream's attention paths: flash attention on (llama.cpp's default) and off
    seen = {(r["family"], r["format"], r["flash_attn"]): r["prompts"] for r in report["summary"]}
    assert seen == {(f, t, fa): 3 for f in FAMILIES for t in FORMATS for fa in (True, False)}
    assert all(len(c["upstream_greedy"]) == len(c["our_greedy"]) == 32 for c in report["cases"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("family", FAMILIES)
def test_within_bounds(report, family, fmt):
    b = metrics.THRESHOLDS[fmt]
    for c in (c for c in report["cases"] if c["family"] == family and c["format"] == fmt):
        where = f"{family} {fmt}, flash attention {c['flash_attn']}, {c['prompt_len']}-token prompt"
        assert c["min_cos"] >= b["min_cos"], f"{where}: min row cosine {c['min_cos']:.7f} < {b['min_cos']}"
        assert c["max_rel"] <= b["max_rel"], f"{where}: max|Δ| {c['max_rel']:.5f} std > {b['max_rel']}"
        assert c["first_rel"] <= b["first_rel"], f"{where}: first position max|Δ| {c['first_rel']:.6f} std"
        if c["divergence"] is not None:
            d = c["divergence"]
            assert d["upstream_gap"] < b["near_tie"] * c["logit_std"], \
                f"{where}: greedy ids diverge at step {d['step']} where upstream's top-2 gap is {d['upstream_gap']}"
        assert c["pass"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_greedy_identical_without_near_ties(report, fmt):
    """Where upstream's 32 greedy steps have no near-tie, the ids must be identical."""
    near = metrics.THRESHOLDS[fmt]["near_tie"]
    clear = [c for c in report["cases"] if c["format"] == fmt and c["min_upstream_gap"] >= near * c["logit_std"]]
    assert clear or fmt.startswith("TQ")  # F32/F16: most prompts have no near-tie at all
    for c in clear:
        assert c["greedy_identical"], f"{c['model']} {c['prompt_len']} FA {c['flash_attn']}: {c['divergence']}"


def test_upstream_still_cannot_run_what_readme_says(report):
    """crossval/README.md documents that upstream has no squared-ReLU 2B-4T arch and no
    I2_S type; if upstream learns either, this fails and the README must change."""
    rows = {(u["family"], u["format"]): u for u in report["unsupported"]}
    assert set(rows) == {("b158", "F32"), ("bitnet", "I2_S")}
    assert "unknown model architecture" in (rows[("b158", "F32")]["upstream_error"] or "")
    assert "type 36" in (rows[("bitnet", "I2_S")]["upstream_error"] or "")
    for u in rows.values():
        assert u["ours"].startswith("runs"), u


def test_report_passes_and_is_written(report):
    assert report["pass"] and report["_returncode"] == 0
    assert "| bitnet | `bitnet` | TQ2_0 | on |" in report["_markdown"]


# ---- the comparison itself (no llama_cpp needed) -----------------------------------------

def _case(noise: float, fmt: str = "F32", diverge_at: int | None = None, tie: bool = False,
          first_noise: float | None = None) -> dict:
    """A synthetic case: upstream's logits, ours = upstream + Gaussian noise (``noise`` std,
    ``first_noise`` at the first position), optionally a greedy divergence."""
    rng = np.random.default_rng(0)
    prompt, n, V = [5, 6, 7], 4, 64
    up = rng.standard_normal((len(prompt) + n, V)).astype(np.float32) * 6
    if diverge_at is not None and tie:  # a near-tie in upstream's logits at that step
        row = up[len(prompt) - 1 + diverge_at]
        row[np.argsort(row)[-2]] = row.max() - 1e-4
    up_ids = [int(up[len(prompt) - 1 + i].argmax()) for i in range(n)]
    scale = np.full((len(up), 1), noise, np.float32)
    scale[0] = noise if first_noise is None else first_noise
    ours = up + scale * up.std() * rng.standard_normal(up.shape).astype(np.float32)
    our_ids = list(up_ids)
    if diverge_at is not None:
        our_ids[diverge_at] = int(np.argsort(up[len(prompt) - 1 + diverge_at])[-2])
    return metrics.compare_case(fmt, prompt, up_ids, our_ids, up, ours)


def test_compare_accepts_identical_and_rejects_noise():
    assert _case(0.0)["pass"] and _case(0.0)["greedy_identical"]
    assert not _case(0.01)["pass"]                      # 1% of a std of noise: outside the F32 bound
    # TQ: int8 flips after the first position are within bounds, but not at the first one
    assert _case(0.01, fmt="TQ2_0", first_noise=0.0)["pass"]
    assert not _case(0.01, fmt="TQ2_0")["pass"]
    assert not _case(0.2, fmt="TQ2_0", first_noise=0.0)["pass"]


def test_compare_greedy_divergence_needs_a_near_tie():
    assert not _case(0.0, diverge_at=2)["pass"]
    tied = _case(0.0, diverge_at=2, tie=True)
    assert tied["pass"] and tied["divergence"]["step"] == 2 and not tied["greedy_identical"]
