// The pthreads build in headless Chromium, on a page served by web/serve.py:
//   node web/test/test_mt_page.mjs SPEC.json
// SPEC: { isolated_url, plain_url (the same page, --isolated and not), chromium,
//         prompt, max_tokens, text (native greedy text), user_data_dir }.
// The page (mt.html, written by the test next to the build) runs
// BitNet.load({threads: 2}) and reports crossOriginIsolated, the threads the
// model runs on and the greedy text. Only 127.0.0.1 is reachable.
import fs from "node:fs";
import { chromium } from "playwright-core";
import { Tally } from "./harness.mjs";

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const t = new Tally("mt page");
const context = await chromium.launchPersistentContext(spec.user_data_dir, {
  executablePath: spec.chromium,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
});
await context.route("**/*", (route) =>
  /^(data|blob):/.test(route.request().url()) || new URL(route.request().url()).hostname === "127.0.0.1"
    ? route.continue() : route.abort());
const run = async (url) => {
  const page = await context.newPage();
  const notes = [];
  page.on("console", (m) => notes.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => notes.push(`pageerror: ${e}`));
  await page.goto(url);
  const r = await page.evaluate(() => window.result);
  await page.close();
  return { ...r, notes };
};
try {
  const q = `?prompt=${encodeURIComponent(spec.prompt)}&n=${spec.max_tokens}`;
  const iso = await run(spec.isolated_url + q);
  t.check(iso.isolated === true, "served with --isolated, the page is crossOriginIsolated", JSON.stringify(iso));
  t.check(iso.threads === 2 && iso.build === "mt", "BitNet.load({threads: 2}) runs the pthreads build on 2 threads", JSON.stringify(iso));
  t.check(iso.text === spec.text, "2 threads in Chromium == native greedy text", `${JSON.stringify(iso.text)} vs ${JSON.stringify(spec.text)}`);
  if (iso.rate1) console.log(`timing (Chromium): 1 thread ${iso.rate1.toFixed(1)} tok/s, 2 threads ${iso.rate2.toFixed(1)} tok/s`);
  const plain = await run(spec.plain_url + q);
  t.check(plain.isolated === false && plain.threads === 1 && plain.text === spec.text,
    "without isolation: one thread, same text", JSON.stringify(plain));
  t.check(plain.notes.some((n) => /not cross-origin isolated/.test(n)), "the fallback is noted on the console", JSON.stringify(plain.notes));
} finally {
  await context.close();
}
t.done();
