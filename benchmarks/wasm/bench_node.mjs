// One wasm decode measurement (used by bench_wasm.py):
//   node bench_node.mjs DIST simd|scalar|mt MODEL.gguf N_TOKENS [THREADS]
// (mt: the pthreads build, libbitnet-mt, on THREADS threads; default 2)
// Prints one JSON line: kernel, load seconds, decode tokens/s (tokens after
// the first, timed between token callbacks: prompt processing excluded).
import fs from "node:fs";
import path from "node:path";

const [dist, build, modelPath, nTok, nThreads] = process.argv.slice(2);
const { BitNet } = await import(path.resolve(dist, "bitnet.js"));
const base = { simd: "libbitnet", scalar: "libbitnet-scalar", mt: "libbitnet-mt" }[build];
const threads = build === "mt" ? Number(nThreads ?? 2) : 1;
const bn = await BitNet.load({ simd: build !== "scalar", threads, wasmBinary: fs.readFileSync(path.join(dist, `${base}.wasm`)) });
const bytes = fs.readFileSync(modelPath);
let t = performance.now();
const m = bn.loadModel(bytes, { nCtx: 256 });
const loadS = (performance.now() - t) / 1000;
const prompt = [1, 100, 200, 300, 400, 500, 600, 700];
const n = Number(nTok);
m.generateTokens(prompt, { maxTokens: 2, ignoreEos: true }); // warm-up (JIT tiers, page faults)
const times = [];
t = performance.now();
m.generateTokens(prompt, { maxTokens: n, ignoreEos: true, onToken: () => void times.push(performance.now()) });
const decode = (times.length - 1) / ((times.at(-1) - times[0]) / 1000);
console.log(JSON.stringify({ build, kernel: m.kernel, load_s: loadS, first_token_s: (times[0] - t) / 1000, decode_tok_s: decode, n: times.length, threads: m.threads }));
m.free();
