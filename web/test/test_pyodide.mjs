// The bitnet Python package under Pyodide (node, no browser), on the wasm engine:
//   node web/test/test_pyodide.mjs SPEC.json
// SPEC: { dist, pyodide (its npm folder), wheel, model, expected: {...} from the native binding }.
// Python output is compared with the native binding's (tests/test_web_page.py).
import fs from "node:fs";
import path from "node:path";
import { loadBuild, Tally } from "./harness.mjs";

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const t = new Tally("pyodide");
const t0 = performance.now();
const { loadPyodide } = await import(path.resolve(spec.pyodide, "pyodide.mjs"));
const pyodide = await loadPyodide({ indexURL: path.resolve(spec.pyodide) + "/" });
const tPy = performance.now();
const bn = await loadBuild(spec.dist, "simd");
const { installBitnet } = await import(path.resolve(spec.dist, "bitnet_pyodide.mjs"));
await installBitnet(pyodide, { bn, wheel: fs.readFileSync(spec.wheel), defaultModel: fs.readFileSync(spec.model) });
console.log(`pyodide ${pyodide.version} loaded in ${((tPy - t0) / 1000).toFixed(1)} s`);

pyodide.globals.set("spec_json", JSON.stringify(spec.expected));
const result = pyodide.runPython(`
import json, sys, time, warnings
exp = json.loads(spec_json)
out = {}
import bitnet
out["platform"] = sys.platform
out["no_cffi_numpy"] = not any(m in sys.modules for m in ("cffi", "numpy", "_cffi_backend"))
out["backend"] = bitnet.Model.__module__
out["version"] = bitnet.__version__
out["system_info"] = bitnet.system_info()
with bitnet.Model() as m:
    out["kernel"] = m.kernel
    out["repr"] = repr(m)
    t = time.perf_counter()
    out["text"] = m.generate(exp["prompt"], max_tokens=exp["max_tokens"], temperature=0)
    out["gen_seconds"] = time.perf_counter() - t
    s = m.stream(exp["prompt"], max_tokens=exp["max_tokens"])
    out["pieces"] = list(s)
    out["stream_stats"] = [s.n_tokens, s.finish_reason, s.tokens_per_second > 0]
    out["ids"] = m.tokenize(exp["prompt"])
    out["ids_nobos"] = m.tokenize(exp["prompt"], add_bos=False)
    out["detok"] = m.detokenize(out["ids_nobos"])
    out["gen_ids"] = m.generate_tokens(out["ids"], 16, temperature=0)
    out["sampled"] = m.generate(exp["prompt"], max_tokens=16, temperature=0.8, seed=1234)
    out["penalised"] = m.generate(exp["prompt"], max_tokens=32, temperature=0, frequency_penalty=1.5, presence_penalty=0.5)
    out["stop"] = m.generate(exp["prompt"], max_tokens=exp["max_tokens"], stop=exp["stop"])
    out["stop_pieces"] = list(m.stream(exp["prompt"], max_tokens=exp["max_tokens"], stop=exp["stop"]))
    rows = m.logits(out["ids"])
    out["logits_shape"] = [len(rows), len(rows[0])]
    out["logits_last_argmax"] = max(range(len(rows[-1])), key=rows[-1].__getitem__)
    out["logits_first8"] = list(rows[-1][:8])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out["chat_prompt"] = m.chat_prompt(exp["messages"])
        out["chat"] = m.chat(exp["messages"], max_tokens=24)
        out["chat_warnings"] = [str(x.message) for x in w]
    out["chat_pieces"] = list(m.chat_stream(exp["messages"], max_tokens=24))
    try:
        m.generate_tokens([m.n_vocab], 1)
    except ValueError as e:
        out["range_error"] = str(e)
    early = m.stream(exp["prompt"], max_tokens=exp["max_tokens"])
    next(early); early.close()
    out["after_close"] = m.generate(exp["prompt"], max_tokens=exp["max_tokens"]) == out["text"]
out["closed_repr"] = repr(m)
json.dumps(out)
`);
const got = JSON.parse(result);
const exp = spec.expected;
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const show = (x) => JSON.stringify(x).slice(0, 300);
console.log(`python under pyodide: ${JSON.stringify({ kernel: got.kernel, text: got.text, gen_seconds: got.gen_seconds })}`);
t.check(got.platform === "emscripten", "sys.platform is emscripten", got.platform);
t.check(got.no_cffi_numpy, "import bitnet imports neither cffi nor numpy");
t.check(got.backend === "bitnet._browser", "bitnet.Model is the browser backend", got.backend);
t.check(got.version === exp.version, "bitnet.__version__ is the engine's", got.version);
t.check(/wasm_simd/.test(got.system_info), "system_info names wasm_simd", got.system_info);
t.check(got.kernel === "wasm_simd", "the model runs the wasm_simd kernel", got.kernel);
t.check(got.text === exp.text, "greedy generate() == native", `${show(got.text)} vs ${show(exp.text)}`);
t.check(same(got.pieces, exp.pieces), "stream() pieces == native", `${show(got.pieces)} vs ${show(exp.pieces)}`);
t.check(same(got.stream_stats, exp.stream_stats), "stream stats (n_tokens, finish_reason, speed)", show(got.stream_stats));
t.check(same(got.ids, exp.ids) && same(got.ids_nobos, exp.ids_nobos), "tokenize == native", show(got.ids));
t.check(got.detok === exp.detok, "detokenize == native", show(got.detok));
t.check(same(got.gen_ids, exp.gen_ids), "generate_tokens == native", `${show(got.gen_ids)} vs ${show(exp.gen_ids)}`);
t.check(got.sampled === exp.sampled, "seeded sampling == native", `${show(got.sampled)} vs ${show(exp.sampled)}`);
t.check(got.penalised === exp.penalised && exp.penalised !== exp.text, "frequency/presence penalties == native",
  `${show(got.penalised)} vs ${show(exp.penalised)}`);
t.check(got.stop === exp.stop_text && same(got.stop_pieces, exp.stop_pieces), "stop strings == native", `${show(got.stop_pieces)} vs ${show(exp.stop_pieces)}`);
t.check(same(got.logits_shape, exp.logits_shape) && got.logits_last_argmax === exp.logits_last_argmax,
  "logits rows x n_vocab, argmax == native", show([got.logits_shape, got.logits_last_argmax]));
t.check(got.logits_first8.every((x, i) => Math.abs(x - exp.logits_first8[i]) <= 1e-3 * Math.max(1, Math.abs(x))),
  "logits values == native (1e-3)", `${show(got.logits_first8)} vs ${show(exp.logits_first8)}`);
t.check(got.chat_prompt === exp.chat_prompt, "chat_prompt without jinja2 == native (jinja2)", `${show(got.chat_prompt)} vs ${show(exp.chat_prompt)}`);
t.check(got.chat === exp.chat && got.chat_pieces.join("") === exp.chat, "chat() and chat_stream() == native", `${show(got.chat)} vs ${show(exp.chat)}`);
t.check(got.chat_warnings.length === 0, "no warning for a model without its own template", show(got.chat_warnings));
t.check(/out of range/.test(got.range_error ?? ""), "out-of-range ids: ValueError", got.range_error);
t.check(got.after_close, "closing a stream early leaves the model usable");
t.check(got.closed_repr === "<bitnet.Model (closed)>", "with-block closes the model", got.closed_repr);
console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
t.done();
