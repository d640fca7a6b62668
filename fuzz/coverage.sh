#!/usr/bin/env bash
# Line coverage of the engine code the fuzz corpora reach (clang source-based coverage).
#
#   fuzz/coverage.sh                          every target over fuzz/corpus/<target>
#   fuzz/coverage.sh [TARGET [DIR...]]...     the targets named, each over the DIRs after it
#                                             (none: fuzz/corpus/<target>); CC=clang-NN to pick a clang
#
# e.g. fuzz/coverage.sh fuzz_gguf_load fuzz/corpus/fuzz_gguf_load /tmp/corpus_gguf fuzz_tokenizer
#
# Builds each target with -fprofile-instr-generate -fcoverage-mapping (no sanitizers) into
# build/fuzz-cov/, replays its corpus with libFuzzer's -runs=0, merges the profile with
# llvm-profdata and prints `llvm-cov report` for the files that read untrusted bytes, one
# total line per target (all instrumented engine sources), then the same for all targets together.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/build/fuzz-cov
cc=${CC:-clang}
ver=$("$cc" --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p')
tool() { command -v "$1-$ver" || command -v "$1" || { echo "fuzz/coverage.sh: $1 not found" >&2; exit 2; }; }
profdata=$(tool llvm-profdata)
llvmcov=$(tool llvm-cov)
files=(core_c/gguf.c core_c/model.c core_c/tensor_types.c core_c/tokenizer.c core_c/unicode.c
       bindings_c/src/api.c bindings_c/src/api_tokenizer.c)

# arguments: TARGET [DIR...] groups
declare -A dirs=()
targets=()
for a in "$@"; do
    if [[ $a != */* && -f $root/fuzz/$a.c ]]; then targets+=("$a"); dirs[$a]=""
    elif ((${#targets[@]})); then dirs[${targets[-1]}]+="$(cd "$a" && pwd)"$'\n'
    else echo "fuzz/coverage.sh: $a: not a target (fuzz/<target>.c)" >&2; exit 2; fi
done
if ((${#targets[@]} == 0)); then
    for t in "$root"/fuzz/fuzz_*.c; do targets+=("$(basename "${t%.c}")"); dirs[${targets[-1]}]=""; done
fi

mkdir -p "$out/obj"
flags=(-std=c11 -O1 -g -ffp-contract=off -DBITNET_BUILD -D_POSIX_C_SOURCE=200809L
       -I "$root/core_c" -I "$root/bindings_c/include" -I "$root/bindings_c/src" -pthread
       "-DBITNET_FUZZ_VOCAB_DIR=\"$root/tests/data/tokenizer\"")
cov=(-fprofile-instr-generate -fcoverage-mapping)
objs=()
for src in "$root"/core_c/*.c "$root"/bindings_c/src/*.c; do
    obj="$out/obj/$(basename "$(dirname "$src")")_$(basename "${src%.c}").o"
    objs+=("$obj")
    case $(basename "$src") in  # SIMD kernels plain, as in build.sh
    kernels_avx2_*.c | kernels_avx512.c | kernels_neon.c | kernels_wasm_simd.c)
        "$cc" "${flags[@]/-O1/-O2}" -c "$src" -o "$obj" ;;
    *) "$cc" "${flags[@]}" "${cov[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj" ;;
    esac
done

cd "$root"
bins=()
profs=()
for name in "${targets[@]}"; do
    bin=$out/$name
    "$cc" "${flags[@]}" "${cov[@]}" -fsanitize=fuzzer "fuzz/$name.c" "${objs[@]}" -o "$bin" -lm
    bins+=("$bin")
    mapfile -t d < <(printf '%s' "${dirs[$name]}")
    ((${#d[@]})) || d=("$root/fuzz/corpus/$name")
    rm -f "$out/$name".*.profraw
    LLVM_PROFILE_FILE="$out/$name.%p.profraw" "$bin" -runs=0 "${d[@]}" >"$out/$name.log" 2>&1 ||
        { tail -20 "$out/$name.log" >&2; exit 1; }
    "$profdata" merge -sparse "$out/$name".*.profraw -o "$out/$name.profdata"
    profs+=("$out/$name.profdata")
    echo "== $name ($(sed -n 's/.*seed corpus: files: \([0-9]*\).*/\1/p' "$out/$name.log") inputs, ${d[*]#$root/})"
    "$llvmcov" report "$bin" -instr-profile="$out/$name.profdata" "${files[@]}"
done

# one line a target, and all targets together, over every engine source (the harnesses left out)
total() {  # PROFDATA BIN...
    local p=$1 b=$2; shift 2
    "$llvmcov" report "$b" "${@/#/-object=}" -instr-profile="$p" -ignore-filename-regex='/fuzz/' |
        awk '$1 == "TOTAL" { printf "lines %d/%d (%s), functions %s\n", $8 - $9, $8, $10, $7 }'
}
echo "== totals over core_c/*.c and bindings_c/src/*.c"
for name in "${targets[@]}"; do printf '%-16s ' "$name"; total "$out/$name.profdata" "$out/$name"; done
if ((${#targets[@]} > 1)); then
    "$profdata" merge -sparse "${profs[@]}" -o "$out/all.profdata"
    printf '%-16s ' all; total "$out/all.profdata" "${bins[@]}"
    echo "== all targets"
    others=("${bins[@]:1}")
    "$llvmcov" report "${bins[0]}" "${others[@]/#/-object=}" -instr-profile="$out/all.profdata" "${files[@]}"
fi
