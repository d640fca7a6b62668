#!/usr/bin/env python3
"""Make the benchmark models: one synthetic F16 source GGUF, quantized by each peer.

    python benchmarks/peers/make_models.py [--models-dir /work/peers/models] [--build-dir /work/peers/build]

1. tools/synth_model.py writes the source model: the BitNet-b1.58-2B-4T shape
   (hidden 2560, ffn 6912, 30 layers, 20/5 heads, vocab 128256, tied embeddings),
   random ternary weights stored as F16 (values {-s, 0, +s}, s = 0.02), an F16 token
   embedding and a placeholder SentencePiece vocabulary (llama.cpp-family loaders and
   llama-bench need tokenizer.ggml.*). Architecture `bitnet` by default (1bitLLM
   family: SiLU FFN, sub-norms): the one name all three peers know; --arch
   bitnet-b1.58 (squared ReLU, the real 2B-4T) is only loaded by ik_llama.cpp and us.
2. Each peer's own llama-quantize makes its format from that same file:
     upstream llama.cpp  TQ2_0, TQ1_0
     ik_llama.cpp        IQ2_BN
     bitnet.cpp          I2_S  (nthreads 1, as its setup_env.py: the I2_S scale is per tensor)
   with the token embedding (= the tied output) forced to Q6_K for parity
   (--token-embedding-type q6_K --output-tensor-type q6_K). Ternary values quantize
   exactly in all four formats, so every file holds the same weights.
3. Writes MODELS_DIR/models.json (file, format, producer, command, size, sha256) and
   MODELS_DIR/SHA256SUMS. Existing files are kept (use --force to remake).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SYNTH = os.path.join(REPO, "tools", "synth_model.py")

# (format, peer whose llama-quantize makes it, extra trailing args)
FORMATS = [
    ("TQ2_0", "upstream", []),
    ("TQ1_0", "upstream", []),
    ("IQ2_BN", "ik", []),
    ("I2_S", "bitnet", ["1"]),
]
EMBD_TYPE = "q6_K"


def log(msg: str) -> None:
    print(f"[make_models] {msg}", file=sys.stderr, flush=True)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd: list[str], logfile: str) -> float:
    log("$ " + " ".join(cmd))
    t0 = time.time()
    with open(logfile, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        with open(logfile, errors="replace") as f:
            sys.stderr.write("".join(f.readlines()[-25:]))
        raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}; log {logfile}")
    return time.time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default="/work/peers/models")
    ap.add_argument("--build-dir", default="/work/peers/build", help="build_peers.py --prefix")
    ap.add_argument("--shape", default="2b4t", help="tools/synth_model.py --shape (default: 2b4t)")
    ap.add_argument("--arch", default="bitnet", choices=["bitnet", "bitnet-b1.58", "bitnet-25"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--formats", default=",".join(f for f, _, _ in FORMATS),
                    help="comma-separated subset (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="llama-quantize threads (I2_S always uses 1)")
    ap.add_argument("--force", action="store_true", help="remake files that exist")
    args = ap.parse_args(argv)

    os.makedirs(args.models_dir, exist_ok=True)
    logs = os.path.join(args.models_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    tag = f"{args.shape}-{args.arch}"
    src = os.path.join(args.models_dir, f"synth-{tag}-F16.gguf")
    manifest_path = os.path.join(args.models_dir, "models.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {"files": {}}
    files = manifest["files"]

    if args.force or not os.path.exists(src):
        cmd = [sys.executable, SYNTH, src + ".tmp", "--shape", args.shape, "--format", "F16", "--embd-format", "F16",
               "--arch", args.arch, "--vocab", "spm", "--seed", str(args.seed)]
        secs = run(cmd, os.path.join(logs, f"synth-{tag}.log"))
        os.replace(src + ".tmp", src)
        files[os.path.basename(src)] = {"format": "F16", "producer": "tools/synth_model.py", "arch": args.arch,
                                        "shape": args.shape, "seed": args.seed, "command": cmd,
                                        "seconds": round(secs, 1)}

    wanted = [f for f in args.formats.split(",") if f]
    for fmt, peer, extra in FORMATS:
        if fmt not in wanted:
            continue
        out = os.path.join(args.models_dir, f"synth-{tag}-{fmt}.gguf")
        if os.path.exists(out) and not args.force:
            log(f"{os.path.basename(out)}: exists")
            continue
        quant = os.path.join(args.build_dir, peer, "bin", "llama-quantize")
        if not os.path.exists(quant):
            log(f"{fmt}: {quant} missing (build {peer} with build_peers.py first); skipped")
            continue
        threads = extra or [str(args.threads)]
        cmd = [quant, "--token-embedding-type", EMBD_TYPE, "--output-tensor-type", EMBD_TYPE,
               src, out + ".tmp", fmt, *threads]
        try:
            secs = run(cmd, os.path.join(logs, f"quantize-{tag}-{fmt}.log"))
        except RuntimeError as e:
            log(f"{fmt}: {e}")
            continue
        os.replace(out + ".tmp", out)
        files[os.path.basename(out)] = {"format": fmt, "producer": f"{peer} llama-quantize", "arch": args.arch,
                                        "shape": args.shape, "source": os.path.basename(src),
                                        "command": cmd, "seconds": round(secs, 1)}

    # sizes and hashes of everything listed that exists
    for name, info in sorted(files.items()):
        path = os.path.join(args.models_dir, name)
        if not os.path.exists(path):
            continue
        st = os.stat(path)
        if info.get("mtime") != st.st_mtime or "sha256" not in info:
            log(f"sha256 {name}")
            info.update(size=st.st_size, mtime=st.st_mtime, sha256=sha256_file(path))
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    with open(os.path.join(args.models_dir, "SHA256SUMS"), "w") as f:
        for name, info in sorted(files.items()):
            if "sha256" in info and os.path.exists(os.path.join(args.models_dir, name)):
                f.write(f"{info['sha256']}  {name}\n")
    for name, info in sorted(files.items()):
        if "size" in info:
            print(f"{info['format']:7s} {info['size'] / 1e9:7.3f} GB  {info['sha256'][:16]}  {name}  ({info['producer']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
