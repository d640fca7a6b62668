// The demo page (dist/web, served on 127.0.0.1) in headless Chromium:
//   node web/test/test_page.mjs SPEC.json
// SPEC: { url, chromium, model (a GGUF to pick), prompt, max_tokens, text (native greedy text), screenshot, user_data_dir }.
// Drives Debian's chromium with playwright-core (npm, no browser download);
// every request that is not to 127.0.0.1 is blocked and reported.
import fs from "node:fs";
import { chromium } from "playwright-core";
import { Tally } from "./harness.mjs";

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const t = new Tally("page");
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(1);
const context = await chromium.launchPersistentContext(spec.user_data_dir, {
  executablePath: spec.chromium,
  headless: true,
  viewport: { width: 900, height: 1000 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // Belt and braces with the route below: no host but 127.0.0.1 resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
});
const outside = [];
const errors = [];
const local = (url) => /^(data|blob):/.test(url) || new URL(url).hostname === "127.0.0.1";
await context.route("**/*", (route) => {
  const url = route.request().url();
  if (local(url)) return route.continue();
  outside.push(url);
  return route.abort();
});
context.on("request", (req) => {
  if (!local(req.url()) && !outside.includes(req.url())) outside.push(req.url());
});
const page = context.pages()[0] ?? (await context.newPage());
page.on("console", (msg) => {
  if (msg.type() === "error") errors.push(msg.text());
});
page.on("pageerror", (e) => errors.push(String(e)));
page.on("worker", (w) => w.on("console", (msg) => msg.type() === "error" && errors.push(`worker: ${msg.text()}`)));
page.on("requestfailed", (req) => local(req.url()) && errors.push(`request failed: ${req.url()}`));

try {
  await page.goto(spec.url);
  await page.evaluate(() => window.bitnetDemo.ready);
  const loaded = secs();
  const info = await page.textContent("#model-info");
  t.check(/kernel wasm_simd/.test(info), "the page loads the default model; kernel wasm_simd", info);
  // A greedy generation through the UI.
  await page.fill("#prompt", spec.prompt);
  await page.fill("#max-tokens", String(spec.max_tokens));
  await page.fill("#temperature", "0");
  await page.click("#generate");
  await page.waitForFunction(() => document.body.dataset.state === "idle" && document.querySelector("#stats").textContent !== "",
    null, { timeout: 60000 });
  const text = await page.textContent("#output");
  t.check(text === spec.text, "greedy text through the page == native", `${JSON.stringify(text)} vs ${JSON.stringify(spec.text)}`);
  const stats = await page.textContent("#stats");
  t.check(/tokens\/s/.test(stats) && /kernel wasm_simd/.test(stats), "tokens/s and the kernel are shown", stats);
  await page.screenshot({ path: spec.screenshot, fullPage: true });
  // The test hook, and chat mode through the UI.
  const hook = await page.evaluate(({ p, n }) => window.bitnetDemo.generate(p, { maxTokens: n, temperature: 0 }),
    { p: spec.prompt, n: spec.max_tokens });
  t.check(hook.text === spec.text, "bitnetDemo.generate == native", JSON.stringify(hook.text));
  await page.check("input[name=mode][value=chat]");
  await page.fill("#prompt", "Who made the light?");
  await page.fill("#max-tokens", "24");
  await page.click("#generate");
  await page.waitForFunction(() => document.body.dataset.state === "idle" && document.querySelectorAll("#chat p").length === 2,
    null, { timeout: 60000 });
  const answer = await page.textContent("#chat p.assistant");
  t.check(answer.replace(/^Model: /, "").length > 0, "chat mode answers", answer);
  // A GGUF picked with the file input: streamed into wasm memory, progress to 1, same text.
  await page.check("input[name=mode][value=complete]");
  await page.setInputFiles("#file", spec.model);
  await page.waitForFunction(() => /Loaded bitnet-english/.test(document.querySelector("#status").textContent), null, { timeout: 30000 });
  const progress = await page.evaluate(() => document.querySelector("#progress").value);
  const picked = await page.evaluate(({ p, n }) => window.bitnetDemo.generate(p, { maxTokens: n, temperature: 0 }),
    { p: spec.prompt, n: spec.max_tokens });
  t.check(progress === 1 && picked.text === spec.text, "a picked GGUF loads (progress 1) and generates == native",
    `${progress} ${JSON.stringify(picked.text)}`);
  // A model over 2 GB is refused with a clear message (a sparse fake File, never read).
  const refused = await page.evaluate(() => {
    const big = { name: "huge.gguf", size: 3 * 1024 ** 3 };
    window.bitnetDemo.openFile(big);
    return document.querySelector("#status").textContent;
  });
  t.check(/up to 2 GiB/.test(refused), "a > 2 GB model is refused with a clear message", refused);
  console.log(`page ready in ${loaded} s, done in ${secs()} s`);
} catch (e) {
  t.check(false, "the page runs", String(e));
  await page.screenshot({ path: spec.screenshot, fullPage: true }).catch(() => {});
} finally {
  t.check(outside.length === 0, "no request left 127.0.0.1", outside.join(" "));
  t.check(errors.length === 0, "no console errors", errors.join(" | "));
  await context.close();
}
t.done();
