"""report.json (everything measured) and report.md (the tables) from one run's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def summarize(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model: the worst value over its prompts."""
    rows: dict[str, dict[str, Any]] = {}
    for c in cases:
        r = rows.setdefault((c["model"], c["flash_attn"]), {"model": c["model"], "flash_attn": c["flash_attn"],
                                         "family": c["family"], "arch": c["arch"], "format": c["format"],
                                         "prompts": 0, "min_cos": 1.0, "max_abs": 0.0, "max_rel": 0.0, "first_rel": 0.0,
                                         "greedy_identical": 0, "argmax_agree": 0, "positions": 0, "pass": True})
        r["prompts"] += 1
        r["min_cos"] = min(r["min_cos"], c["min_cos"])
        r["max_abs"] = max(r["max_abs"], c["max_abs"])
        r["max_rel"] = max(r["max_rel"], c["max_rel"])
        r["first_rel"] = max(r["first_rel"], c["first_rel"])
        r["greedy_identical"] += int(c["greedy_identical"])
        r["argmax_agree"] += c["argmax_agree"]
        r["positions"] += c["positions"]
        r["pass"] = r["pass"] and c["pass"]
    return list(rows.values())


def write(out_dir: Path, data: dict[str, Any]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "report.json"
    md = out_dir / "report.md"
    js.write_text(_dumps(data))
    md.write_text(markdown(data))
    return js, md


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one line per case (readable diffs of the committed copy, a third of the size)."""
    parts = []
    for k, v in data.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            body = ",\n".join("  " + json.dumps(x) for x in v)
            parts.append(f" {json.dumps(k)}: [\n{body}\n ]")
        else:
            parts.append(f" {json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _pf(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def _fa(on: bool) -> str:
    return "on" if on else "off"


def markdown(d: dict[str, Any]) -> str:
    up, ours, s = d["upstream"], d["ours"], d["settings"]
    lines = [
        "# Cross-validation: bitnet vs upstream llama.cpp",
        "",
        f"Upstream: llama-cpp-python {up.get('llama_cpp_python')} built from its PyPI sdist "
        f"(sha256 `{up.get('sdist_sha256')}`) by crossval/install_llama_cpp.py; "
        f"`{up.get('system_info')}`.",
        f"Ours: bitnet {ours.get('bitnet')}, kernel `{ours.get('kernel')}`.",
        f"Settings: n_ctx {s['n_ctx']}, {s['n_threads']} threads, KV cache f16 in both; upstream flash attention "
        f"{' and '.join(_fa(x) for x in s['flash_attn'])} (FA column); prompts of "
        f"{', '.join(map(str, s['prompt_lens']))} random ids, {s['n_predict']} greedy steps. "
        f"Model shape: {', '.join(f'{k} {v}' for k, v in s['shape'].items())}.",
        f"Generated {d['generated_at']} by `{d['command'].strip()}` in {d['seconds']} s.",
        "",
        "Logits: teacher-forced over prompt + upstream's greedy ids (every position); `/std` divides by "
        "the std of upstream's logits (~23), `first` is the first position alone. Greedy: ids identical "
        "over all 32 steps. Worst value over the prompts:",
        "",
        "| family | arch | format | FA | min cosine | max abs Δ | max abs Δ / std | first / std "
        "| greedy identical | argmax agree | result |",
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in d["summary"]:
        lines.append(f"| {r['family']} | `{r['arch']}` | {r['format']} | {_fa(r['flash_attn'])} | "
                     f"{r['min_cos']:.7f} | {r['max_abs']:.4f} | {r['max_rel']:.5f} | {r['first_rel']:.6f} | "
                     f"{r['greedy_identical']}/{r['prompts']} | {r['argmax_agree']}/{r['positions']} | "
                     f"{_pf(r['pass'])} |")
    lines += ["", "## Bounds (crossval/metrics.py)", "",
              "| format | min cosine | max abs Δ / std | first / std | greedy near-tie (× std) |",
              "|---|--:|--:|--:|--:|"]
    for fmt, b in d["thresholds"].items():
        lines.append(f"| {fmt} | {b['min_cos']} | {b['max_rel']} | {b['first_rel']} | {b['near_tie']} |")
    lines += ["", "## Cases", "",
              "| model | FA | prompt | min cosine | max abs Δ | /std | first /std | min upstream gap | greedy "
              "| result |", "|---|---|--:|--:|--:|--:|--:|--:|---|---|"]
    for c in d["cases"]:
        dv = c["divergence"]
        greedy = "identical" if dv is None else (f"same {dv['step']} ids, then {dv['our_id']} vs {dv['upstream_id']}"
                                                 f" (upstream gap {dv['upstream_gap']})")
        lines.append(f"| {c['model']} | {_fa(c['flash_attn'])} | {c['prompt_len']} | {c['min_cos']:.7f} | "
                     f"{c['max_abs']:.4f} | {c['max_rel']:.5f} | {c['first_rel']:.6f} | {c['min_upstream_gap']} | "
                     f"{greedy} | {_pf(c['pass'])} |")
    lines += ["", "## What upstream cannot run", "",
              "| model | arch | format | upstream llama.cpp | ours | covered instead by |", "|---|---|---|---|---|---|"]
    for u in d["unsupported"]:
        up_txt = "loads it (README out of date!)" if u["upstream_error"] is None else f"refuses: `{u['upstream_error']}`"
        lines.append(f"| {u['model']} | `{u['arch']}` | {u['format']} | {up_txt} | {u['ours']} | {u['covered_by']} |")
    lines += ["", f"Result: {'all pass' if d['pass'] else 'FAILURES (see above)'}.", ""]
    return "\n".join(lines)
