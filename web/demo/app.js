// The demo page: UI only; Python and the engine run in worker.js.
// window.bitnetDemo (for tests and the console):
//   await bitnetDemo.ready;                       // Python, the engine and the default model are loaded
//   await bitnetDemo.generate("And God said", {maxTokens: 32, temperature: 0})  // {text, stats}
//   await bitnetDemo.chat([{role: "user", content: "Hi"}], {maxTokens: 32})
const MAX_MODEL_BYTES = 2 * 1024 ** 3; // as bitnet.js: wasm32 memory holds at most 2 GB models
const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), progress: $("progress"), info: $("model-info"), file: $("file"), drop: $("drop"),
  loadDefault: $("load-default"), form: $("form"), prompt: $("prompt"), promptLabel: $("prompt-label"),
  maxTokens: $("max-tokens"), temperature: $("temperature"), seed: $("seed"), generate: $("generate"),
  clear: $("clear"), chat: $("chat"), output: $("output"), stats: $("stats"), engine: $("engine"),
};

const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
let nextId = 1;
const pending = new Map(); // generate id -> {resolve, reject, parts}
let modelLoaded, modelFailed;
let messages = []; // the chat so far
let onModel = null;

function setStatus(text, alert = false) {
  ui.status.textContent = text;
  ui.status.setAttribute("role", alert ? "alert" : "status");
}

function setBusy(busy) {
  document.body.dataset.state = busy ? "busy" : "idle";
  ui.generate.disabled = busy;
  ui.loadDefault.disabled = busy;
  ui.file.disabled = busy;
}

const ready = new Promise((resolve, reject) => {
  modelLoaded = resolve;
  modelFailed = reject;
});

worker.onmessage = ({ data }) => {
  const job = pending.get(data.id);
  switch (data.type) {
    case "status":
      setStatus(data.text);
      break;
    case "progress":
      ui.progress.value = data.value;
      break;
    case "ready":
      ui.engine.textContent = `libbitnet ${data.engine} (${data.simd ? "SIMD128" : "scalar"} build), Python ${data.python} (Pyodide)`;
      worker.postMessage({ type: "load-default" });
      break;
    case "model":
      ui.progress.value = 1;
      setStatus(`Loaded ${data.name}.`);
      ui.info.textContent = `${data.description} · kernel ${data.kernel} · context ${data.n_ctx} tokens`;
      setBusy(false);
      modelLoaded();
      break;
    case "piece":
      job.parts.push(data.piece);
      job.target.textContent += data.piece;
      break;
    case "done":
      pending.delete(data.id);
      setBusy(false);
      ui.stats.textContent = `${data.stats.n_tokens} tokens · ${data.stats.tokens_per_second.toFixed(1)} tokens/s` +
        ` · prompt ${(data.stats.prompt_seconds * 1000).toFixed(0)} ms · kernel ${data.stats.kernel}` +
        ` · ${data.stats.finish_reason}`;
      job.resolve({ text: job.parts.join(""), stats: data.stats });
      break;
    case "error":
      setStatus(data.text, true);
      setBusy(false);
      if (job) {
        pending.delete(data.id);
        job.reject(new Error(data.text));
      } else modelFailed(new Error(data.text));
      break;
  }
};

function run(request, target) {
  const id = nextId++;
  setBusy(true);
  ui.stats.textContent = "";
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, parts: [], target });
    worker.postMessage({ type: "generate", id, request });
  });
}

function options(opts = {}) {
  return {
    max_tokens: opts.maxTokens ?? Number(ui.maxTokens.value),
    temperature: opts.temperature ?? Number(ui.temperature.value),
    seed: opts.seed ?? (ui.seed.value === "" ? null : Number(ui.seed.value)),
  };
}

function generate(prompt, opts) {
  ui.output.textContent = "";
  return run({ mode: "complete", prompt, ...options(opts) }, ui.output);
}

function addTurn(role, text) {
  const p = document.createElement("p");
  p.className = role;
  const who = document.createElement("strong");
  who.textContent = role === "user" ? "You: " : "Model: ";
  const body = document.createElement("span");
  body.textContent = text;
  p.append(who, body);
  ui.chat.append(p);
  return body;
}

async function chat(msgs, opts) {
  const target = addTurn("assistant", "");
  const result = await run({ mode: "chat", messages: msgs, ...options(opts) }, target);
  return result;
}

function mode() {
  return ui.form.elements.mode.value;
}

function updateMode() {
  const isChat = mode() === "chat";
  ui.chat.hidden = !isChat;
  ui.output.hidden = isChat;
  ui.clear.hidden = !isChat;
  ui.promptLabel.textContent = isChat ? "Your message" : "Prompt";
}

ui.form.addEventListener("change", updateMode);
ui.form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = ui.prompt.value;
  try {
    if (mode() === "chat") {
      messages.push({ role: "user", content: text });
      addTurn("user", text);
      ui.prompt.value = "";
      const { text: answer } = await chat(messages);
      messages.push({ role: "assistant", content: answer.trim() });
    } else {
      await generate(text);
    }
  } catch (e) {
    /* shown in the status line */
  }
});
ui.clear.addEventListener("click", () => {
  messages = [];
  ui.chat.replaceChildren();
});

function openFile(file) {
  if (!file) return;
  if (file.size > MAX_MODEL_BYTES) {
    setStatus(`${file.name} is ${(file.size / 1024 ** 3).toFixed(2)} GiB: the browser build holds models up to 2 GiB ` +
      "(WebAssembly memory is at most 4 GiB and loading copies the model once). Use the native bitnet for it.", true);
    return;
  }
  if (!file.name.toLowerCase().endsWith(".gguf")) {
    setStatus(`${file.name} is not a .gguf file.`, true);
    return;
  }
  setBusy(true);
  ui.progress.value = 0;
  ui.info.textContent = "";
  worker.postMessage({ type: "load-file", file });
}

ui.file.addEventListener("change", () => openFile(ui.file.files[0]));
ui.loadDefault.addEventListener("click", () => {
  setBusy(true);
  ui.progress.value = 0;
  worker.postMessage({ type: "load-default" });
});
for (const ev of ["dragenter", "dragover"])
  ui.drop.addEventListener(ev, (e) => {
    e.preventDefault();
    ui.drop.classList.add("over");
  });
for (const ev of ["dragleave", "drop"])
  ui.drop.addEventListener(ev, () => ui.drop.classList.remove("over"));
ui.drop.addEventListener("drop", (e) => {
  e.preventDefault();
  openFile(e.dataTransfer.files[0]);
});

updateMode();
setBusy(true);
window.bitnetDemo = { ready, generate, chat, openFile };
