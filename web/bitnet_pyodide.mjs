/**
 * bitnet_pyodide.mjs: make `import bitnet` work in Pyodide on the WebAssembly engine.
 *
 *   import { loadPyodide } from "./pyodide/pyodide.mjs";
 *   import { BitNet } from "./bitnet.js";
 *   import { installBitnet } from "./bitnet_pyodide.mjs";
 *   const pyodide = await loadPyodide({ indexURL: "./pyodide/" });
 *   const bn = await BitNet.load();
 *   await installBitnet(pyodide, { bn, wheel: new Uint8Array(await (await fetch(wheelUrl)).arrayBuffer()) });
 *   pyodide.runPython("import bitnet; print(bitnet.Model(model_bytes).generate('And God said'))");
 *
 * The engine stays its own emscripten module with its own memory (bn, from
 * web/bitnet.js); Python reaches it as the JS module "bitnet_wasm"
 * (bindings_py/bitnet/_browser.py). The wheel is the pure-Python bitnet
 * package web/site_build.py writes (libbitnet_web-VERSION-py3-none-any.whl),
 * unpacked into site-packages. defaultModel (optional): GGUF bytes (a
 * Uint8Array or an array of chunks) that `bitnet.Model()` loads when given no
 * model.
 */
// A plain Uint8Array view: Pyodide refuses subclasses such as node's Buffer.
const plain = (b) => (ArrayBuffer.isView(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(b));

export async function installBitnet(pyodide, { bn, wheel, defaultModel = null }) {
  const model = defaultModel === null ? null : Array.isArray(defaultModel) ? defaultModel.map(plain) : plain(defaultModel);
  pyodide.registerJsModule("bitnet_wasm", { bn, default_model: model });
  const site = pyodide.runPython("import sysconfig; sysconfig.get_path('purelib')");
  pyodide.unpackArchive(plain(wheel), "wheel", { extractDir: site });
  pyodide.runPython("import importlib; importlib.invalidate_caches()");
  return site;
}
