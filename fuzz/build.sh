#!/usr/bin/env bash
# Build the libFuzzer targets fuzz/fuzz_*.c with clang, AddressSanitizer and UBSan.
#
#   fuzz/build.sh [OUT_DIR]        (default: build/fuzz; CC=clang-NN to pick a clang)
#
# Every engine source (core_c/*.c, bindings_c/src/*.c) is compiled once with
# -fsanitize=fuzzer-no-link,address,undefined (coverage-instrumented), then each
# target links them with -fsanitize=fuzzer. UBSan findings abort (no recovery),
# so they count as crashes. Prints the path of each target built.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/build/fuzz}
cc=${CC:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz/build.sh: $cc not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi
mkdir -p "$out/obj"
san="address,undefined"
flags=(-std=c11 -O1 -g -fno-omit-frame-pointer -ffp-contract=off -fno-sanitize-recover=all
       -DBITNET_BUILD -D_POSIX_C_SOURCE=200809L
       -I "$root/core_c" -I "$root/bindings_c/include" -I "$root/bindings_c/src" -pthread)
# tokenizer vocabularies (tests/data/tokenizer) unless BITNET_FUZZ_VOCAB_DIR says otherwise at run time
flags+=("-DBITNET_FUZZ_VOCAB_DIR=\"$root/tests/data/tokenizer\"")

jobs=${FUZZ_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}
objs=()
pids=()
for src in "$root"/core_c/*.c "$root"/bindings_c/src/*.c; do
    obj="$out/obj/$(basename "$(dirname "$src")")_$(basename "${src%.c}").o"
    objs+=("$obj")
    case $(basename "$src") in
    # The SIMD kernel files take minutes under clang 14 with ASan + UBSan (intrinsics-heavy
    # loops); they are built plain -O2 here. Their memory safety is tests/test_c_unit.py's
    # ASan run (test_kernels_*.c); the fuzzers target the parsers.
    kernels_avx2_*.c | kernels_avx512.c | kernels_neon.c | kernels_wasm_simd.c)
        "$cc" "${flags[@]/-O1/-O2}" -c "$src" -o "$obj" & ;;
    *) "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link,$san -c "$src" -o "$obj" & ;;
    esac
    pids+=($!)
    if ((${#pids[@]} >= jobs)); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done

for target in "$root"/fuzz/fuzz_*.c; do
    name=$(basename "${target%.c}")
    "$cc" "${flags[@]}" -fsanitize=fuzzer,$san "$target" "${objs[@]}" -o "$out/$name" -lm
    echo "$out/$name"
done
