// The demo's worker: Pyodide + the bitnet Python package on the wasm engine.
// Generation runs here so the page stays responsive and paints each piece
// as it arrives. Messages in: {type: "load-default"} | {type: "load-file", file}
// | {type: "generate", id, request}. Out: status, progress, ready, model,
// piece, done, error (see app.js).
import { loadPyodide } from "./pyodide/pyodide.mjs";
import { BitNet } from "./bitnet.js";
import { installBitnet } from "./bitnet_pyodide.mjs";

const post = (type, data = {}) => postMessage({ type, ...data });
let bn, site, demo; // demo: the Python functions below

// The Python side: one model at a time, text streamed piece by piece.
const PY = `
import json, time
import bitnet

model = None

def use(js_model):
    global model
    if model is not None:
        model.close()
    model = bitnet.Model(js_model)  # a model bitnet.js loaded; Python owns it now
    return json.dumps({"kernel": model.kernel, "description": model.description, "n_ctx": model.n_ctx})

def run(request_json, emit):
    req = json.loads(request_json)
    kw = {"max_tokens": int(req["max_tokens"]), "temperature": float(req["temperature"])}
    if req.get("seed") is not None:
        kw["seed"] = int(req["seed"])
    if req["mode"] == "chat":
        stream = model.chat_stream(req["messages"], **kw)
    else:
        stream = model.stream(req["prompt"], **kw)
    t0 = time.perf_counter()
    for piece in stream:
        emit(piece)
    return json.dumps({"n_tokens": stream.n_tokens, "tokens_per_second": stream.tokens_per_second,
                       "prompt_seconds": stream.prompt_seconds, "seconds": time.perf_counter() - t0,
                       "finish_reason": stream.finish_reason, "kernel": model.kernel})
`;

async function init() {
  post("status", { text: "Loading Python (Pyodide) and the engine…" });
  site = await (await fetch("site.json")).json();
  const [pyodide, engine] = await Promise.all([
    loadPyodide({ indexURL: new URL("./pyodide/", import.meta.url).href }),
    BitNet.load(),
  ]);
  bn = engine;
  const wheel = new Uint8Array(await (await fetch(site.wheel)).arrayBuffer());
  await installBitnet(pyodide, { bn, wheel });
  const ns = pyodide.globals.get("dict")();
  pyodide.runPython(PY, { globals: ns });
  demo = { use: ns.get("use"), run: ns.get("run") };
  post("ready", { python: pyodide.runPython("import sys; sys.version.split()[0]"), engine: bn.version,
                  simd: bn.simd, site });
}

async function load(what, loader) {
  post("status", { text: `Loading ${what}…` });
  const onProgress = (f) => post("progress", { value: f });
  const jsModel = await loader(onProgress);
  const info = JSON.parse(demo.use(jsModel));
  post("model", { name: what, ...info });
}

const ready = init().catch((e) => post("error", { text: `Starting failed: ${e.message ?? e}` }));

onmessage = async ({ data }) => {
  await ready;
  try {
    if (data.type === "load-default") {
      await load("the default model", (onProgress) => bn.fetchModel(site.model, { onProgress }));
    } else if (data.type === "load-file") {
      await load(data.file.name, (onProgress) => bn.loadModelFromBlob(data.file, { onProgress }));
    } else if (data.type === "generate") {
      const emit = (piece) => post("piece", { id: data.id, piece });
      const stats = JSON.parse(demo.run(JSON.stringify(data.request), emit));
      post("done", { id: data.id, stats });
    }
  } catch (e) {
    post("error", { id: data.id, text: String(e.message ?? e).split("\n").filter(Boolean).slice(-1)[0] });
  }
};
