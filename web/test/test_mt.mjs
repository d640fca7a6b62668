// The pthreads build (libbitnet-mt) in node, through bitnet.js:
//   node web/test/test_mt.mjs DIST MODEL.gguf PROMPT MAX_TOKENS EXPECTED_TEXT_JSON
// 2 threads: the same greedy text as the one-thread SIMD build and the native
// engine (EXPECTED), model.threads === 2, heap views valid after memory growth;
// then a timing line (not a check) for 1 vs 2 threads.
import fs from "node:fs";
import path from "node:path";
import { Tally } from "./harness.mjs";

const [dist, modelPath, prompt, maxTokensArg, expectedJson] = process.argv.slice(2);
const maxTokens = Number(maxTokensArg);
const expected = JSON.parse(expectedJson);
const t = new Tally("mt");
const { BitNet } = await import(path.resolve(dist, "bitnet.js"));
const bin = (base) => fs.readFileSync(path.join(dist, `${base}.wasm`));
const bytes = fs.readFileSync(modelPath);
const greedy = (m) => m.generate(prompt, { maxTokens, temperature: 0 });

t.check(fs.existsSync(path.join(dist, "libbitnet-mt.worker.js")), "the pthreads worker file is next to the build");

const st = await BitNet.load({ simd: true, wasmBinary: bin("libbitnet") });
const m1 = st.loadModel(bytes);
const text1 = greedy(m1);
t.check(text1 === expected, "one-thread SIMD build == native", `${JSON.stringify(text1)} vs ${JSON.stringify(expected)}`);

const mt = await BitNet.load({ threads: 2, wasmBinary: bin("libbitnet-mt") });
t.check(mt.threads === 2 && mt.simd, "BitNet.load({threads: 2}) in node loads the pthreads build", `threads ${mt.threads}`);
const m2 = mt.loadModel(bytes);
t.check(m2.threads === 2, "model.threads reports 2", `${m2.threads}`);
t.check(m2.kernel === "wasm_simd", "the pthreads build runs the wasm_simd kernels", m2.kernel);
let calls = 0;
const text2 = m2.generate(prompt, { maxTokens, temperature: 0, onToken: () => void calls++ });
t.check(text2 === expected, "2 threads == native greedy text", `${JSON.stringify(text2)} vs ${JSON.stringify(expected)}`);
t.check(calls > 0 && calls <= maxTokens, "onToken is called once per token (on the calling thread)", `${calls}`);
const s1 = m2.generate("In the beginning", { maxTokens: 16, temperature: 0.9, seed: 7 });
const s1ref = m1.generate("In the beginning", { maxTokens: 16, temperature: 0.9, seed: 7 });
t.check(s1 === s1ref, "sampling with a seed: 2 threads == 1 thread", `${JSON.stringify(s1)} vs ${JSON.stringify(s1ref)}`);

// Memory growth on shared memory: the views bitnet.js uses must follow it.
const M = mt.M;
const before = M.wasmMemory.buffer.byteLength;
const big = 256 * 1024 * 1024;
const p = M._malloc(big) >>> 0;
M.HEAPU8[p + big - 1] = 42;
t.check(p !== 0 && M.wasmMemory.buffer.byteLength > before && M.HEAPU8.length === M.wasmMemory.buffer.byteLength &&
  M.HEAPU8[p + big - 1] === 42, "HEAPU8 follows memory growth", `${before} -> ${M.wasmMemory.buffer.byteLength}`);
M._free(p);
t.check(greedy(m2) === expected, "2 threads still == native after growth");

const one = mt.loadModel(bytes, { threads: 1 });
t.check(one.threads === 1 && greedy(one) === expected, "loadModel({threads: 1}) on the pthreads build", `${one.threads}`);

// Timing (not a check): tokens/s over a longer greedy run.
const N = 128;
const rate = (m) => {
  greedy(m); // warm
  const t0 = performance.now();
  const ids = m.generateTokens(m.tokenize(prompt), { maxTokens: N, temperature: 0, ignoreEos: true });
  return (ids.length * 1000) / (performance.now() - t0);
};
const r1 = rate(m1), rmt1 = rate(one), r2 = rate(m2);
console.log(`timing: ${N} tokens, default model: simd build ${r1.toFixed(1)} tok/s, mt build 1 thread ${rmt1.toFixed(1)} tok/s, 2 threads ${r2.toFixed(1)} tok/s`);
one.free();
m2.free();
m1.free();

const fb = await BitNet.load({ threads: 2, simd: false, wasmBinary: bin("libbitnet-scalar") });
t.check(fb.threads === 1 && !fb.simd, "without SIMD128 {threads} falls back to the one-thread build");
t.done();
