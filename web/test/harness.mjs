// Shared by the node tests (web/test/*.mjs): load a build, report checks.
import fs from "node:fs";
import path from "node:path";

export async function loadBuild(dist, build) {
  const { BitNet } = await import(path.resolve(dist, "bitnet.js"));
  const base = build === "simd" ? "libbitnet" : "libbitnet-scalar";
  const wasmBinary = fs.readFileSync(path.join(dist, `${base}.wasm`));
  return BitNet.load({ simd: build === "simd", wasmBinary });
}

export class Tally {
  constructor(label) {
    this.label = label;
    this.failed = 0;
    this.passed = 0;
  }
  check(ok, what, detail = "") {
    if (ok) this.passed++;
    else this.failed++;
    console.log(`${ok ? "ok  " : "FAIL"} [${this.label}] ${what}${!ok && detail ? `: ${detail}` : ""}`);
  }
  done() {
    console.log(`[${this.label}] ${this.passed} passed, ${this.failed} failed`);
    process.exit(this.failed ? 1 : 0);
  }
}

export const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);
