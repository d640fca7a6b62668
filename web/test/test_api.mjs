// Behaviour of web/bitnet.js on one build:
//   node web/test/test_api.mjs DIST simd|scalar MODEL.gguf VOCAB.gguf
import fs from "node:fs";
import { loadBuild, Tally, eq } from "./harness.mjs";

const [dist, build, modelPath, vocabPath] = process.argv.slice(2);
const t = new Tally(`${build} api`);
const bn = await loadBuild(dist, build);
const mod = await import(`${dist}/bitnet.js`);
const throws = (fn, re) => {
  try {
    fn();
    return false;
  } catch (e) {
    return re.test(String(e && e.message));
  }
};

t.check(/kernels: scalar/.test(bn.systemInfo()), "systemInfo", bn.systemInfo());
t.check(typeof mod.simdSupported() === "boolean" && mod.simdSupported() === true, "node runs SIMD128 (simdSupported)");
t.check(throws(() => bn._reserve(mod.MAX_MODEL_BYTES + 1), /at most 2 GiB models/), "models over 2 GB are refused with a clear message");
t.check(throws(() => bn.loadModel(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), /loading the model failed: .+/), "garbage bytes: an Error with the engine's message");
const bytes = fs.readFileSync(modelPath);
t.check(throws(() => bn.loadModel(bytes, { kernel: "avx2" }), /cannot run|unknown/), "a kernel this build cannot run is an error");

const m = bn.loadModel(bytes);
t.check(m.arch === "bitnet-b1.58" && m.nVocab === 8192 && m.nLayer === 8 && m.nEmbd === 512, "model info getters", `${m.arch} ${m.nVocab} ${m.nLayer}`);
const ids = m.tokenize("And God said");
t.check(ids[0] === m.bos && m.detokenize(ids.slice(1)) === "And God said", "tokenize adds BOS; detokenize inverts", JSON.stringify(ids));
t.check(eq(m.tokenize("And God said", { addBos: false }), ids.slice(1)), "tokenize({addBos: false})");

let seen = 0;
const stopped = m.generateTokens(ids, { maxTokens: 20, onToken: () => ++seen === 3 });
t.check(stopped.length === 3, "onToken returning true stops generation", `${stopped.length} tokens`);
t.check(throws(() => m.generate("And", { maxTokens: 5, onToken: () => { throw new Error("boom"); } }), /boom/), "an exception in onToken propagates");
const again = m.generate("And God said", { maxTokens: 8 });
t.check(again.length > 0, "the model is usable after that");
const s1 = m.generate("In the beginning", { maxTokens: 16, temperature: 0.9, seed: 1234 });
const s2 = m.generate("In the beginning", { maxTokens: 16, temperature: 0.9, seed: 1234 });
t.check(s1 === s2, "sampling with a seed repeats", `${JSON.stringify(s1)} vs ${JSON.stringify(s2)}`);
t.check(throws(() => m.generateTokens([m.nVocab], { maxTokens: 1 }), /out of range/), "out-of-range prompt ids are refused");
m.free();
t.check(throws(() => m.generate("x"), /free/), "use after free() throws");

// UTF-8 split over tokens: pieces are whole characters and join to the text.
const tok = bn.loadTokenizer(fs.readFileSync(vocabPath));
const text = "Äpfel 😀 ½ 日本語 naïve 🇩🇪";
const tids = tok.tokenize(text, { addBos: false });
const dec = new TextDecoder("utf-8", { fatal: true });
const split = tids.some((id) => throws(() => dec.decode(tok.tokenToPiece(id)), /./));
t.check(split, "the test text has tokens that are not whole UTF-8 characters");
const asm = tok.textAssembler();
const pieces = tids.map((id) => asm.push(id));
pieces.push(asm.finish());
t.check(pieces.join("") === text && !pieces.some((p) => p.includes("\uFFFD")), "streamed pieces are whole characters and join to the text", JSON.stringify(pieces));
tok.free();
t.done();
