#!/usr/bin/env bash
# Prints the C++ compiler the emulation builds with: $CXX, else the first of clang++, c++, g++
# found (clang++ first: with it emu.hpp can NaN-fill each block's shared memory, see
# __shared__ there). Exit status 3 and a message when there is none.
# Used by run.sh and driver/build.sh: cxx=$(bash tools/kernel_emu/cxx.sh) || exit $?
if [ -n "${CXX:-}" ]; then echo "$CXX"; exit 0; fi
for c in clang++ c++ g++; do
  if command -v "$c" >/dev/null 2>&1; then echo "$c"; exit 0; fi
done
echo "kernel_emu: no C++ compiler found (set CXX)" >&2
exit 3
