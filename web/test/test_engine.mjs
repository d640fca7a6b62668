// Engine checks of one wasm build against expectations computed natively
// (tests/test_wasm.py writes the spec):
//   node web/test/test_engine.mjs spec.json
// spec: { dist, build: "simd" | "scalar", kernel, default_model: {path, prompt,
//   max_tokens, text}, golden: [{id, model, prompt_ids, n, ids}],
//   tokenizer: [{name, path, pairs: [[text, ids], ...]}] }
import fs from "node:fs";
import { loadBuild, Tally, eq } from "./harness.mjs";

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const t = new Tally(spec.build);
const bn = await loadBuild(spec.dist, spec.build);
const t0 = performance.now();

// The default model: kernel chosen at run time, greedy text equal to native.
{
  const d = spec.default_model;
  const bytes = fs.readFileSync(d.path);
  const progress = [];
  const m = bn.loadModel(bytes, { onProgress: (f) => progress.push(f) });
  t.check(m.kernel === spec.kernel, `default kernel is ${spec.kernel}`, m.kernel);
  t.check(progress.length >= 2 && progress.at(-1) === 1 && progress.every((f, i) => i === 0 || f >= progress[i - 1]),
    "load progress rises to 1", JSON.stringify(progress));
  const streamed = [];
  const text = m.generate(d.prompt, { maxTokens: d.max_tokens, temperature: 0, onToken: (p) => void streamed.push(p) });
  t.check(text === d.text, "greedy text equals the native binding's", JSON.stringify(text));
  t.check(streamed.join("") === text, "streamed pieces join to the text");
  m.free();
  if (spec.build === "simd") {
    // The same model on the scalar kernels of the same build: bit-exact kernels give the same text.
    const ms = bn.loadModel([bytes.subarray(0, 1000), bytes.subarray(1000)], { kernel: "scalar" });
    t.check(ms.kernel === "scalar", "kernel: 'scalar' is honoured", ms.kernel);
    const ts = ms.generate(d.prompt, { maxTokens: d.max_tokens, temperature: 0 });
    t.check(ts === d.text, "scalar kernels of the SIMD build give the same text (chunked load)", JSON.stringify(ts));
    ms.free();
  }
}

// Golden greedy ids.
for (const g of spec.golden) {
  const m = bn.loadModel(fs.readFileSync(g.model), { nCtx: 512 });
  const ids = m.generateTokens(g.prompt_ids, { maxTokens: g.n, temperature: 0, ignoreEos: true });
  t.check(eq(ids, g.ids), `golden ${g.id}: ${g.n} greedy ids equal native`, `got ${JSON.stringify(ids)} want ${JSON.stringify(g.ids)}`);
  m.free();
}

// Tokenizer golden pairs (llama.cpp's test-tokenizer-0 data).
for (const v of spec.tokenizer) {
  const tok = bn.loadTokenizer(fs.readFileSync(v.path));
  const bad = v.pairs.filter(([text, want]) => !eq(tok.tokenize(text, { addBos: false }), want));
  t.check(bad.length === 0, `tokenizer ${v.name}: ${v.pairs.length} golden pairs`,
    bad.length ? `${bad.length} differ, first ${JSON.stringify(bad[0])}` : "");
  const rt = v.pairs.filter(([text]) => tok.detokenize(tok.tokenize(text, { addBos: false })) !== text);
  t.check(rt.length === 0, `tokenizer ${v.name}: detokenize(tokenize(text)) == text`, JSON.stringify(rt[0]));
  tok.free();
}
console.log(`[${spec.build}] engine checks took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
t.done();
