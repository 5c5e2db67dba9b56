#!/usr/bin/env bash
# Builds the CPU emulation of the igemm conv / matmul kernels (emu.hpp, main.cpp) from the real
# kernels/ sources and runs it; exit status non-zero on a build error or any failing check.
#
# The only change to the sources: in a temporary copy of kernels/common.cuh the bodies of the
# two inline-PTX helpers, tf32_round and mma_tf32_m16n8k8, become calls into emu.hpp. Each
# helper's signature line must end with `{` and its body end with a `}` in column 0; anything
# else (or inline asm left elsewhere) stops here with a message rather than emulating the
# wrong code. Compiler: $CXX, else the first of clang++, c++, g++ found (clang++ first: with
# it emu.hpp can also NaN-fill each block's shared memory, see __shared__ there).
# KERNEL_EMU_ASAN=1 adds AddressSanitizer (about 4x slower): every read past a buffer is
# reported, not only those whose value reaches an output.
# Usage: bash tools/kernel_emu/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# KERNELS_DIR: another kernels/ folder to check (e.g. a deliberately broken copy).
kernels=${KERNELS_DIR:-$here/../../kernels}

cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for c in clang++ c++ g++; do
    if command -v "$c" >/dev/null 2>&1; then cxx=$c; break; fi
  done
fi
[ -n "$cxx" ] || { echo "kernel_emu: no C++ compiler found (set CXX)" >&2; exit 3; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

awk '
  function swap(line, body) {
    if (line !~ /\{[ \t]*$/) { print "kernel_emu: expected `{` ending: " line > "/dev/stderr"; exit 1 }
    sub(/\{[ \t]*$/, "", line)
    print line "{ " body " }"
    skip = 1
    ++swapped
  }
  skip { if ($0 ~ /^}/) skip = 0; next }
  /^__device__.*[ \t]tf32_round\(/ { swap($0, "return emu::tf32_round(v);"); next }
  /^__device__.*[ \t]mma_tf32_m16n8k8\(/ { swap($0, "emu::mma(d, a, b);"); next }
  { print }
  END {
    if (swapped != 2) { print "kernel_emu: found " swapped + 0 " of the 2 PTX helpers in common.cuh" > "/dev/stderr"; exit 1 }
  }
' "$kernels/common.cuh" > "$work/common.cuh.body"
{ echo '#include "emu.hpp"'; cat "$work/common.cuh.body"; } > "$work/common.cuh"
# conv.cu / matmul.cu include "common.cuh" from their own folder: copies make them see the swap.
cp "$kernels/conv.cu" "$kernels/matmul.cu" "$work/"
if grep -nE '\basm\b *(volatile)? *\(' "$work/common.cuh" "$work/conv.cu" "$work/matmul.cu" >&2; then
  echo "kernel_emu: inline PTX that emu.hpp does not emulate (above)" >&2
  exit 1
fi

flags=(-std=c++17 -O2 -pthread -Wno-unknown-pragmas)
if [ "${KERNEL_EMU_ASAN:-0}" = 1 ]; then flags+=(-fsanitize=address -fno-omit-frame-pointer); fi
echo "kernel_emu: $cxx ${flags[*]}"
"$cxx" "${flags[@]}" -I "$work" -I "$here" "$here/main.cpp" -o "$work/emu"
# The emulator aborts on a deadlock itself; the timeout is a last resort against a hang.
if command -v timeout >/dev/null 2>&1; then timeout 600 "$work/emu"; else "$work/emu"; fi
