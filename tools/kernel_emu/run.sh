#!/usr/bin/env bash
# Builds the CPU emulations (emu.hpp) of the igemm conv / matmul kernels (main.cpp), of the
# bf16 corr_warp kernels (main_bf16.cpp) and of the elementwise / layout / reduce / pool / resize /
# unfold / loss / adam kernels (main_ops.cpp) from the real kernels/ sources and runs them; exit
# status non-zero on a build error or any failing check.
#
# The only change to the sources is prepare.sh's: the inline-PTX helpers swapped for emu.hpp.
# Compiler: cxx.sh's ($CXX, else clang++, c++ or g++).
# KERNEL_EMU_ASAN=1 adds AddressSanitizer (about 4x slower): every read past a buffer is
# reported, not only those whose value reaches an output.
# Usage: bash tools/kernel_emu/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# KERNELS_DIR: another kernels/ folder to check (e.g. a deliberately broken copy; prepare.sh
# reads it).

cxx=$(bash "$here/cxx.sh") || exit $?

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bash "$here/prepare.sh" "$work"

# -fno-strict-aliasing: the kernels reinterpret bf16 / f32 buffers as uint4 and unsigned, as
# CUDA allows.
flags=(-std=c++17 -O2 -pthread -fno-strict-aliasing -Wno-unknown-pragmas)
if [ "${KERNEL_EMU_ASAN:-0}" = 1 ]; then flags+=(-fsanitize=address -fno-omit-frame-pointer); fi
echo "kernel_emu: $cxx ${flags[*]}"
# KERNEL_EMU_DRIVERS: which drivers to build and run (mutants.py picks the one a mutant affects).
drivers=${KERNEL_EMU_DRIVERS:-main main_bf16 main_ops}
pids=()
for d in $drivers; do
  [ -f "$here/$d.cpp" ] || { echo "kernel_emu: no driver $d.cpp" >&2; exit 3; }
  "$cxx" "${flags[@]}" -I "$work" -I "$here" "$here/$d.cpp" -o "$work/$d" &  # in parallel
  pids+=($!)
done
built=0
for pid in "${pids[@]}"; do wait "$pid" || built=1; done
[ "$built" = 0 ] || { echo "kernel_emu: build failed" >&2; exit 1; }
# The emulator aborts on a deadlock itself; the timeout is a last resort against a hang.
status=0
for d in $drivers; do
  if command -v timeout >/dev/null 2>&1; then timeout 600 "$work/$d" || status=1; else "$work/$d" || status=1; fi
done
exit $status
