/**
 * bitnet.js: BitNet b1.58 inference in the browser (and node), on the
 * WebAssembly build of the C engine (web/build.py: libbitnet.mjs/.wasm with
 * SIMD128 kernels, libbitnet-scalar.mjs/.wasm without). No Python needed.
 *
 *   import { BitNet } from "./bitnet.js";
 *   const bn = await BitNet.load();                  // picks the SIMD build when the browser has SIMD128
 *   const model = bn.loadModel(bytes, { onProgress: (f) => bar.value = f });  // Uint8Array | ArrayBuffer | [chunks]
 *   // or: const model = await bn.fetchModel("model.gguf", { onProgress });  // streamed, no 2 GB ArrayBuffer
 *   // or: const model = await bn.loadModelFromBlob(file, { onProgress });   // a picked/dropped File, streamed
 *   model.kernel;                                    // "wasm_simd" or "scalar"
 *   model.tokenize("And God said");                  // [ids], BOS first when the GGUF asks for it
 *   const text = model.generate("And God said", {
 *     maxTokens: 64, temperature: 0.8, seed: 42,
 *     onToken: (piece, id) => { out.textContent += piece; },   // return true to stop
 *   });
 *   model.free();
 *
 * The generation loop runs inside wasm (bitnet_generate_tokens_cb); JS is
 * entered once per token. Pieces are complete UTF-8 text: a character split
 * over tokens comes out once it is whole (TextDecoder, stream: true).
 *
 * Options of BitNet.load: { simd: true|false (default: detect),
 *   moduleUrl, wasmUrl (where libbitnet*.mjs / .wasm live; default: next to
 *   this file), wasmBinary (the .wasm bytes, e.g. read from disk in node),
 *   threads: true|N (default 1) }.
 *
 * Threads: { threads: N } (true: navigator.hardwareConcurrency, at most 16)
 * loads the pthreads build (libbitnet-mt.mjs/.wasm + libbitnet-mt.worker.js,
 * SIMD128) with N - 1 preloaded workers, but only where shared memory is
 * allowed: a page with globalThis.crossOriginIsolated (served with COOP
 * same-origin + COEP require-corp, e.g. web/serve.py --isolated) or node.
 * Elsewhere it notes why on the console and loads the one-thread build.
 * model.threads says how many threads a model really runs on; loadModel's
 * opts.threads may lower it. The generate loop still runs on the calling
 * thread (callbacks come from there); the workers only share the kernels.
 *
 * Memory: wasm32 memory is at most 4 GB and the engine copies the GGUF image
 * once while loading, so models over 2 GB are refused. The model's bytes are
 * copied into wasm memory in chunks (onProgress goes from 0 to 1).
 */

// WebAssembly.validate on a module using SIMD128 (i8x16.splat, i8x16.popcnt).
const SIMD_TEST = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** Whether this JS engine runs WebAssembly SIMD128. */
export function simdSupported() {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(SIMD_TEST);
  } catch (e) {
    return false;
  }
}

/** Largest GGUF image loadModel accepts (bytes). */
export const MAX_MODEL_BYTES = 2 * 1024 * 1024 * 1024;

const CHUNK = 16 * 1024 * 1024;
const TOKEN_CONTROL = 3;
const GENERATE_IGNORE_EOS = 1;
const DEFAULT_SEED = 0xb17e7;

const u = (p) => p >>> 0;
const IS_NODE = typeof process === "object" && typeof process.versions?.node === "string";
const MAX_THREADS = 16;

/** opts.threads (true: the cores the browser reports, at most 16; N: N) as a count. */
function wantedThreads(t) {
  if (t === true) return Math.max(1, Math.min(MAX_THREADS, globalThis.navigator?.hardwareConcurrency || 4));
  const n = Math.floor(Number(t) || 1);
  return Math.max(1, Math.min(MAX_THREADS, n));
}

/** emscripten 3.1.6's pthreads runtime for node is CommonJS-minded: its ES
 * module reads the globals `require` and `__dirname` (the module's folder). */
async function nodeGlobalsForEmscripten(moduleUrl) {
  if (typeof globalThis.require !== "function") {
    const { createRequire } = await import("node:module");
    globalThis.require = createRequire(moduleUrl);
  }
  if (typeof globalThis.__dirname !== "string") {
    const { fileURLToPath } = await import("node:url");
    globalThis.__dirname = fileURLToPath(new URL(".", moduleUrl)).replace(/\/$/, "");
  }
}

/** On shared memory, growth (even by another thread) leaves this thread's views
 * on the old, shorter buffer: re-create them whenever the buffer changed. */
function refreshingHeapViews(M) {
  const mem = M.wasmMemory;
  for (const [name, T] of [["HEAPU8", Uint8Array], ["HEAP32", Int32Array], ["HEAPU32", Uint32Array]]) {
    let view = M[name];
    Object.defineProperty(M, name, {
      configurable: true,
      enumerable: true,
      get() {
        if (view.buffer !== mem.buffer) view = new T(mem.buffer);
        return view;
      },
      set(v) {
        view = v;
      },
    });
  }
}
let tokenizerFiles = 0; // wasm pointers above 2 GB come back negative

export class BitNet {
  /** Instantiate the wasm module (see the options above). */
  static async load(opts = {}) {
    const simd = opts.simd ?? simdSupported();
    const threads = wantedThreads(opts.threads);
    let mt = false;
    if (threads > 1) {
      const why = !simd
        ? "this engine has no SIMD128"
        : !(globalThis.crossOriginIsolated === true || IS_NODE)
          ? "the page is not cross-origin isolated (serve it with COOP same-origin and COEP require-corp)"
          : "";
      if (why) console.info(`bitnet.js: ${threads} threads asked for, running on 1 thread: ${why}`);
      else mt = true;
    }
    const base = mt ? "libbitnet-mt" : simd ? "libbitnet" : "libbitnet-scalar";
    const moduleUrl = opts.moduleUrl ?? new URL(`./${base}.mjs`, import.meta.url).href;
    if (mt && IS_NODE) await nodeGlobalsForEmscripten(moduleUrl);
    const { default: factory } = await import(moduleUrl);
    const init = {};
    if (opts.wasmBinary) init.wasmBinary = opts.wasmBinary;
    if (opts.wasmUrl) init.locateFile = (path) => (path.endsWith(".wasm") ? opts.wasmUrl : new URL(path, moduleUrl).href);
    if (mt) {
      // The engine's threads come from a worker pool preloaded before the
      // factory resolves (web/build.py): threads - 1 workers. The workers
      // import the module from moduleUrl.
      init.bnPoolSize = threads - 1;
      init.mainScriptUrlOrBlob = moduleUrl;
      if (IS_NODE) delete init.locateFile; // node's Worker wants a path or a URL object, not a URL string
    }
    const M = await factory(init);
    if (mt) {
      refreshingHeapViews(M);
      // node: the pool's workers must not keep the process alive once the script is done.
      if (IS_NODE) for (const w of M.PThread?.unusedWorkers ?? []) w.unref?.();
    }
    return new BitNet(M, simd, mt ? threads : 1);
  }

  constructor(M, simd, threads = 1) {
    this.M = M;
    /** Whether a SIMD128 build was loaded. */
    this.simd = simd;
    /** Threads a model's context asks for: 1, or the pthreads build's pool + 1. */
    this.threads = threads;
  }

  /** Engine version string. */
  get version() {
    return this.M.UTF8ToString(this.M._bitnet_version());
  }

  /** e.g. "kernels: scalar wasm_simd (default wasm_simd); cpu: simd128". */
  systemInfo() {
    const M = this.M;
    const p = u(M._malloc(512));
    try {
      M._bitnet_system_info(p, 512);
      return M.UTF8ToString(p);
    } finally {
      M._free(p);
    }
  }

  _lastError() {
    return this.M.UTF8ToString(this.M._bitnet_last_error());
  }

  /** Reserve `size` bytes of wasm memory for a GGUF image (checks the size limit). */
  _reserve(size) {
    this._checkSize(size);
    const ptr = u(this.M._malloc(size));
    if (!ptr) throw new Error(`out of WebAssembly memory reserving ${size} bytes for the model`);
    return ptr;
  }

  /** Throw a clear Error for a model size the WebAssembly build cannot hold. */
  _checkSize(size) {
    if (!(size > 0)) throw new Error("the model is empty");
    if (size > MAX_MODEL_BYTES)
      throw new Error(
        `the model is ${(size / 2 ** 30).toFixed(2)} GiB: the WebAssembly build holds at most ` +
          `${MAX_MODEL_BYTES / 2 ** 30} GiB models (wasm32 memory is at most 4 GiB and loading copies the image once)`,
      );
  }

  /**
   * Load a GGUF model from memory: a Uint8Array, an ArrayBuffer or an array
   * of Uint8Array chunks (e.g. the pieces of a streamed download).
   * opts: { onProgress(fraction), kernel ("scalar" | "wasm_simd" | "auto"),
   *         nCtx (0: min(context_length, 4096)), nBatch, kvF32,
   *         threads (at most BitNet.load's; default all of them) }.
   */
  loadModel(data, opts = {}) {
    const chunks = Array.isArray(data) ? data : [data];
    const parts = chunks.map((c) => (c instanceof Uint8Array ? c : new Uint8Array(c)));
    const size = parts.reduce((n, c) => n + c.length, 0);
    const ptr = this._reserve(size);
    let off = 0;
    try {
      for (const c of parts) {
        for (let i = 0; i < c.length; i += CHUNK) {
          const piece = c.subarray(i, Math.min(c.length, i + CHUNK));
          this.M.HEAPU8.set(piece, ptr + off);
          off += piece.length;
          if (opts.onProgress) opts.onProgress((0.9 * off) / size);
        }
      }
      return this._finishLoad(ptr, size, opts);
    } finally {
      this.M._free(ptr);
    }
  }

  /** Download a GGUF (fetch) straight into wasm memory, then load it. */
  async fetchModel(url, opts = {}) {
    const resp = await fetch(url);
    if (!resp.ok) throw new Error(`fetching ${url}: HTTP ${resp.status}`);
    const total = Number(resp.headers.get("content-length"));
    if (!total || !resp.body) return this.loadModel(new Uint8Array(await resp.arrayBuffer()), opts);
    return this.loadModelFromStream(resp.body, total, { ...opts, what: url });
  }

  /** Load a GGUF from a Blob or File (e.g. picked or dropped by the user), read
   * in pieces straight into wasm memory: no ArrayBuffer of the whole file. */
  async loadModelFromBlob(blob, opts = {}) {
    this._checkSize(blob.size);
    return this.loadModelFromStream(blob.stream(), blob.size, { ...opts, what: blob.name || "the file" });
  }

  /** Load a GGUF of `total` bytes from a ReadableStream of Uint8Array chunks. */
  async loadModelFromStream(stream, total, opts = {}) {
    const what = opts.what ?? "the stream";
    const ptr = this._reserve(total);
    try {
      let off = 0;
      const reader = stream.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (off + value.length > total) throw new Error(`${what}: more bytes than expected (${total})`);
        this.M.HEAPU8.set(value, ptr + off);
        off += value.length;
        if (opts.onProgress) opts.onProgress((0.9 * off) / total);
      }
      if (off !== total) throw new Error(`${what}: got ${off} of ${total} bytes`);
      return this._finishLoad(ptr, total, opts);
    } finally {
      this.M._free(ptr);
    }
  }

  /** Load only the tokenizer of a GGUF (vocabulary-only files work) from its bytes. */
  loadTokenizer(bytes) {
    const M = this.M;
    const path = `/tmp/bitnet-vocab-${++tokenizerFiles}.gguf`;
    try {
      M.FS.mkdir("/tmp");
    } catch (e) {
      /* exists */
    }
    M.FS.writeFile(path, bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
    const pp = u(M._malloc(path.length + 1));
    const out = u(M._malloc(4));
    try {
      M.stringToUTF8(path, pp, path.length + 1);
      const st = M._bitnet_tokenizer_load(pp, out);
      if (st !== 0) throw new Error(`loading the tokenizer failed: ${this._lastError()}`);
      return new Tokenizer(this, u(M.HEAPU32[out >>> 2]));
    } finally {
      M._free(pp);
      M._free(out);
      M.FS.unlink(path);
    }
  }

  _finishLoad(ptr, size, opts) {
    const M = this.M;
    const kernel = opts.kernel ?? "auto";
    const kp = u(M._malloc(kernel.length + 1));
    M.stringToUTF8(kernel, kp, kernel.length + 1);
    const model = u(M._bnw_model_load(ptr, size, kp));
    M._free(kp);
    if (!model) throw new Error(`loading the model failed: ${this._lastError()}`);
    const nThreads = Math.min(this.threads, wantedThreads(opts.threads ?? this.threads));
    const ctx = u(
      nThreads > 1
        ? M._bnw_context_create_mt(model, opts.nCtx ?? 0, opts.nBatch ?? 0, opts.kvF32 ? 1 : 0, nThreads)
        : M._bnw_context_create(model, opts.nCtx ?? 0, opts.nBatch ?? 0, opts.kvF32 ? 1 : 0),
    );
    if (!ctx) {
      const msg = this._lastError();
      M._bitnet_model_free(model);
      throw new Error(`creating a context failed: ${msg}`);
    }
    if (opts.onProgress) opts.onProgress(1);
    return new Model(this, model, ctx);
  }
}

/** Tokenizer operations shared by Model and Tokenizer (this._tok: a bitnet_tokenizer). */
class TokenizerOps {
  _live() {
    if (!this._tok) throw new Error(this._freed ? "used after free()" : "the model has no tokenizer");
  }

  _tokError(what) {
    return new Error(`${what}: ${this.M.UTF8ToString(this.M._bitnet_tokenizer_last_error(this._tok))}`);
  }

  /** Whether the GGUF asks for BOS at the start of a prompt. */
  get addBos() {
    this._live();
    return this.M._bitnet_tokenizer_add_bos(this._tok) !== 0;
  }

  /** Text (string or UTF-8 bytes) -> token ids. addBos (default true) prepends BOS
   * when the vocabulary has one; special parses control-token text ("<|eot_id|>"). */
  tokenize(text, { addBos = true, special = false } = {}) {
    this._live();
    const M = this.M;
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    const tp = u(M._malloc(bytes.length + 1));
    const np = u(M._malloc(4));
    let cap = bytes.length + 8;
    try {
      M.HEAPU8.set(bytes, tp);
      for (;;) {
        const out = u(M._malloc(cap * 4));
        try {
          const st = M._bitnet_tokenize(this._tok, tp, bytes.length, addBos && this.bos >= 0 ? 1 : 0,
            special ? 1 : 0, out, cap, np);
          const n = M.HEAP32[np >>> 2];
          if (st !== 0 && n <= cap) throw this._tokError("tokenize");
          if (n > cap) {
            cap = n;
            continue;
          }
          return Array.from(M.HEAP32.subarray(out >>> 2, (out >>> 2) + n));
        } finally {
          M._free(out);
        }
      }
    } finally {
      M._free(tp);
      M._free(np);
    }
  }

  /** Token ids -> text (bytes that form no UTF-8 character become U+FFFD). */
  detokenize(ids) {
    this._live();
    const M = this.M;
    const ip = u(M._malloc(Math.max(1, ids.length) * 4));
    const np = u(M._malloc(4));
    try {
      M.HEAP32.set(Int32Array.from(ids), ip >>> 2);
      let cap = ids.length * 8 + 16;
      for (;;) {
        const buf = u(M._malloc(cap));
        try {
          const st = M._bitnet_detokenize(this._tok, ip, ids.length, buf, cap, np);
          const need = M.HEAPU32[np >>> 2];
          if (need > cap) {
            cap = need;
            continue;
          }
          if (st !== 0) throw this._tokError("detokenize");
          return new TextDecoder().decode(M.HEAPU8.slice(buf, buf + need));
        } finally {
          M._free(buf);
        }
      }
    } finally {
      M._free(ip);
      M._free(np);
    }
  }

  /** The raw bytes of one token (may be part of a UTF-8 character). */
  tokenToPiece(id) {
    this._live();
    const M = this.M;
    const np = u(M._malloc(4));
    let cap = 64;
    try {
      for (;;) {
        const buf = u(M._malloc(cap));
        try {
          const st = M._bitnet_token_to_piece(this._tok, id, buf, cap, np);
          const need = M.HEAPU32[np >>> 2];
          if (need > cap) {
            cap = need;
            continue;
          }
          if (st !== 0) throw this._tokError(`token_to_piece(${id})`);
          return M.HEAPU8.slice(buf, buf + need);
        } finally {
          M._free(buf);
        }
      }
    } finally {
      M._free(np);
    }
  }

  /** GGUF token type of id (3 = control), -1 when out of range. */
  tokenType(id) {
    this._live();
    return this.M._bitnet_token_type_of(this._tok, id);
  }

  _piece(id) {
    let p = (this._pieces ??= new Map()).get(id);
    if (p === undefined) {
      p = this.tokenType(id) === TOKEN_CONTROL ? new Uint8Array(0) : this.tokenToPiece(id);
      this._pieces.set(id, p);
    }
    return p;
  }

  /**
   * Token ids -> text one token at a time: push(id) returns the text that is
   * complete after that token ("" while a UTF-8 character is still split over
   * tokens), finish() the rest. Control tokens and the ids in endTokens add
   * no text. Joined, the pieces are the text of all tokens decoded at once.
   */
  textAssembler(endTokens = []) {
    const ends = new Set(endTokens.filter((t) => t >= 0));
    const dec = new TextDecoder("utf-8");
    return {
      push: (id) => (ends.has(id) ? "" : dec.decode(this._piece(id), { stream: true })),
      finish: () => dec.decode(),
    };
  }
}

/** A vocabulary-only tokenizer (BitNet.loadTokenizer). */
export class Tokenizer extends TokenizerOps {
  constructor(bn, tok) {
    super();
    this.bn = bn;
    this.M = bn.M;
    this._tok = tok;
    this.bos = this.M._bitnet_tokenizer_bos(tok);
    this.eos = this.M._bitnet_tokenizer_eos(tok);
    this.eot = this.M._bitnet_tokenizer_eot(tok);
    this.nVocab = this.M._bitnet_tokenizer_n_vocab(tok);
  }

  free() {
    if (!this._tok) return;
    this.M._bitnet_tokenizer_free(this._tok);
    this._tok = 0;
    this._freed = true;
  }
}

export class Model extends TokenizerOps {
  constructor(bn, model, ctx) {
    super();
    this.bn = bn;
    this.M = bn.M;
    this._model = model;
    this._ctx = ctx;
    this._tok = u(this.M._bitnet_model_tokenizer(model));
    this._pieces = new Map();
    const M = this.M;
    const str = (p) => M.UTF8ToString(p);
    /** Kernel variant the model runs: "wasm_simd" or "scalar". */
    this.kernel = str(M._bitnet_model_kernel(model));
    this.arch = str(M._bitnet_model_arch(model));
    this.desc = str(M._bitnet_model_desc(model));
    this.nVocab = M._bitnet_model_n_vocab(model);
    this.nCtxTrain = M._bitnet_model_n_ctx_train(model);
    this.nCtx = M._bitnet_context_n_ctx(ctx);
    /** Threads the model runs on (the caller's included): 1 unless the pthreads build got its workers. */
    this.threads = M._bnw_context_n_threads(ctx);
    this.nEmbd = M._bitnet_model_n_embd(model);
    this.nLayer = M._bitnet_model_n_layer(model);
    this.bos = M._bitnet_model_token_bos(model);
    this.eos = M._bitnet_model_token_eos(model);
    this.eot = M._bitnet_model_token_eot(model);
  }

  /**
   * Generate after prompt ids; returns the new ids. opts: maxTokens (128),
   * temperature (0: greedy), topK (40), topP (0.95), minP (0.05),
   * repeatPenalty (1), repeatLastN (64), frequencyPenalty (0),
   * presencePenalty (0), seed, ignoreEos (false),
   * onToken(id): return true to stop.
   */
  generateTokens(promptIds, opts = {}) {
    const ids = [];
    this._run(promptIds, opts, (id) => {
      ids.push(id);
      return opts.onToken ? opts.onToken(id) : false;
    });
    return ids;
  }

  /**
   * Complete a prompt (BOS first when the GGUF asks for it) and return the new
   * text. Options as generateTokens, but onToken(piece, id) gets each new
   * piece of text ("" while a character is incomplete, and for control
   * tokens). An end-of-text token ends the text and is not part of it.
   */
  generate(prompt, opts = {}) {
    this._live();
    const promptIds = this.tokenize(prompt, { addBos: this.addBos });
    if (!promptIds.length) throw new Error("the prompt is empty: it tokenizes to no tokens");
    const ends = opts.ignoreEos ? [] : [this.eos, this.eot];
    const text = this.textAssembler(ends);
    const parts = [];
    this._run(promptIds, opts, (id) => {
      const piece = text.push(id);
      parts.push(piece);
      return opts.onToken ? opts.onToken(piece, id) : false;
    });
    const tail = text.finish();
    if (tail) {
      parts.push(tail);
      if (opts.onToken) opts.onToken(tail, -1);
    }
    return parts.join("");
  }

  _checkIds(ids) {
    if (!this._model) throw new Error("used after free()");
    for (const t of ids)
      if (!Number.isInteger(t) || t < 0 || t >= this.nVocab) throw new Error(`token id ${t} is out of range [0, ${this.nVocab})`);
  }

  _sampler(opts) {
    const M = this.M;
    const seed = BigInt.asUintN(64, BigInt(opts.seed ?? DEFAULT_SEED));
    const sampler = u(M._bnw_sampler_create(opts.temperature ?? 0, opts.topK ?? 40, opts.topP ?? 0.95,
      opts.minP ?? 0.05, opts.repeatPenalty ?? 1, opts.repeatLastN ?? 64,
      Number(seed & 0xffffffffn), Number(seed >> 32n), opts.frequencyPenalty ?? 0, opts.presencePenalty ?? 0));
    if (!sampler) throw new Error(`creating a sampler failed: ${this.bn._lastError()}`);
    return sampler;
  }

  _decode(ids, logitsOut = 0) {
    const M = this.M;
    const pp = u(M._malloc(Math.max(1, ids.length) * 4));
    try {
      M.HEAP32.set(Int32Array.from(ids), pp >>> 2);
      const st = M._bitnet_decode(this._ctx, pp, ids.length, logitsOut);
      if (st !== 0) throw new Error(`decode failed: ${M.UTF8ToString(M._bitnet_context_last_error(this._ctx))}`);
    } finally {
      M._free(pp);
    }
  }

  /**
   * The loop of generateTokens one token at a time, for callers that cannot
   * take a callback (a Python iterator: bitnet's Pyodide backend). Returns
   * { next() -> the next new id, or -1 once generation has ended; free() }.
   * Same tokens as generateTokens with the same options: the prompt and each
   * new token go through the sampler, generation ends after EOS/EOT (unless
   * ignoreEos), maxTokens or a full context, and the last token is never
   * decoded. One call into wasm per token (a decode and a sample).
   */
  startGeneration(promptIds, opts = {}) {
    this._checkIds(promptIds);
    if (!promptIds.length) throw new Error("the prompt is empty: give at least one token id");
    const M = this.M;
    const maxTokens = opts.maxTokens ?? 128;
    const sampler = this._sampler(opts);
    const out = u(M._malloc(4));
    let pending = -1;
    let produced = 0;
    let done = maxTokens <= 0;
    let freed = false;
    const free = () => {
      if (freed) return;
      freed = true;
      done = true;
      M._free(out);
      M._bitnet_sampler_free(sampler);
    };
    try {
      M._bitnet_context_reset(this._ctx);
      this._decode(promptIds);
      for (const t of promptIds) M._bitnet_sampler_accept(sampler, t);
    } catch (e) {
      free();
      throw e;
    }
    const next = () => {
      if (done) return -1;
      try {
        if (pending >= 0) this._decode([pending]);
        pending = -1;
        const logits = u(M._bitnet_context_logits(this._ctx));
        const st = M._bitnet_sampler_sample(sampler, logits, this.nVocab, out);
        if (st !== 0) throw new Error(`sampling failed: ${this.bn._lastError()}`);
        const tok = M.HEAP32[out >>> 2];
        M._bitnet_sampler_accept(sampler, tok);
        produced++;
        const isEnd = (tok === this.eos || tok === this.eot) && !opts.ignoreEos;
        if (isEnd || produced >= maxTokens || M._bitnet_context_n_past(this._ctx) >= this.nCtx) free();
        else pending = tok;
        return tok;
      } catch (e) {
        free();
        throw e;
      }
    };
    return { next, free };
  }

  /** Teacher-forced logits of a fresh sequence: a Float32Array of
   * ids.length * nVocab floats, row i the logits after ids[0..i]. */
  logits(ids) {
    this._checkIds(ids);
    const M = this.M;
    const n = ids.length * this.nVocab;
    if (!n) return new Float32Array(0);
    const out = u(M._malloc(n * 4));
    try {
      M._bitnet_context_reset(this._ctx);
      this._decode(ids, out);
      return new Float32Array(M.HEAPU8.buffer, out, n).slice();
    } finally {
      M._free(out);
    }
  }

  /** The GGUF key/value metadata: an object (arrays become arrays). */
  metadata() {
    if (!this._model) throw new Error("used after free()");
    const M = this.M;
    const meta = {};
    const np = u(M._malloc(4));
    try {
      for (let i = 0, n = M._bitnet_model_meta_count(this._model); i < n; i++) {
        const key = M.UTF8ToString(M._bitnet_model_meta_key(this._model, i));
        M._bitnet_model_meta_json(this._model, i, 0, 0, np);
        const need = M.HEAPU32[np >>> 2];
        const buf = u(M._malloc(need));
        try {
          if (M._bitnet_model_meta_json(this._model, i, buf, need, np) !== 0) throw new Error(`metadata ${key}: ${this.bn._lastError()}`);
          meta[key] = JSON.parse(M.UTF8ToString(buf));
        } finally {
          M._free(buf);
        }
      }
    } finally {
      M._free(np);
    }
    return meta;
  }

  _run(promptIds, opts, onId) {
    this._checkIds(promptIds);
    const M = this.M;
    const n = promptIds.length;
    if (!n) throw new Error("the prompt is empty: give at least one token id");
    const sampler = this._sampler(opts);
    const pp = u(M._malloc(n * 4));
    let error = null;
    const cb = M.addFunction((user, token) => {
      try {
        return onId(token) ? 1 : 0;
      } catch (e) {
        error = e; // re-thrown once the C loop has returned
        return 1;
      }
    }, "iii");
    let st;
    try {
      M.HEAP32.set(Int32Array.from(promptIds), pp >>> 2);
      M._bitnet_context_reset(this._ctx);
      st = M._bitnet_generate_tokens_cb(this._ctx, sampler, pp, n, opts.maxTokens ?? 128,
        opts.ignoreEos ? GENERATE_IGNORE_EOS : 0, cb, 0);
    } finally {
      M.removeFunction(cb);
      M._free(pp);
      M._bitnet_sampler_free(sampler);
    }
    if (error) throw error;
    if (st !== 0) throw new Error(`generation failed: ${M.UTF8ToString(M._bitnet_context_last_error(this._ctx))}`);
  }

  /** Free the model and its context (the object is unusable afterwards). */
  free() {
    if (!this._model) return;
    this.M._bitnet_context_free(this._ctx);
    this.M._bitnet_model_free(this._model);
    this._model = this._ctx = this._tok = 0;
    this._freed = true;
  }
}

export default BitNet;
