#!/usr/bin/env bash
# Writes into WORK the kernel sources as the CPU emulation (emu.hpp) compiles them: every
# kernels/*.cu copied unchanged, and kernels/common.cuh and mma_bf16.cuh with the bodies of their
# inline-PTX helpers (tf32_round, mma_tf32_m16n8k8; pack_bf16x2, ldsm_x4, ldsm_x4_trans,
# mma_bf16_16816) swapped for calls into emu.hpp. Each helper's signature line must end with `{`
# and its body end with a `}` in column 0. The bf16 helpers' asm is read, not trusted: cvt's
# operands are passed on in the asm's order, .trans is taken from the ldmatrix string, and any
# other asm text than the one emulated stops here. Anything else (or inline asm left elsewhere)
# stops here with a message rather than emulating the wrong code.
# Used by run.sh (the kernel drivers) and driver/build.sh (the emulated CUDA driver).
# Usage: bash tools/kernel_emu/prepare.sh WORK   (KERNELS_DIR: another kernels/ folder)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kernels=${KERNELS_DIR:-$here/../../kernels}
work=${1:?usage: prepare.sh WORK}
mkdir -p "$work"

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
# mma_bf16.cuh: whitespace is dropped from each helper body before it is matched.
awk '
  function fail(msg) { print "kernel_emu: mma_bf16.cuh: " msg > "/dev/stderr"; bad = 1; exit 1 }
  function start(kind, line) {
    if (line !~ /\{[ \t]*$/) fail("expected `{` ending: " line)
    sub(/\{[ \t]*$/, "", line)
    head = line; mode = kind; body = ""
  }
  # The text of body between the first `from` and the following `to`.
  function between(from, to,   i, rest, j) {
    i = index(body, from); if (!i) return ""
    rest = substr(body, i + length(from)); j = index(rest, to); if (!j) return ""
    return substr(rest, 1, j - 1)
  }
  function finish(   x, y, tr) {
    gsub(/[ \t]+/, "", body)
    if (mode == "pack") {
      # cvt.rn.bf16x2.f32 d, a, b puts a in the upper half: pass the operands in asm order.
      if (!index(body, "asm(\"cvt.rn.bf16x2.f32%0,%1,%2;\":\"=r\"(r):\"f\"(") || !index(body, "returnr;"))
        fail("pack_bf16x2 is not the cvt.rn.bf16x2.f32 emu.hpp emulates: " body)
      x = between(":\"f\"(", "),\"f\"("); y = between("),\"f\"(", "));")
      if (x == "" || y == "") fail("pack_bf16x2: cannot read the cvt operands: " body)
      print head "{ return emu::cvt_rn_bf16x2(" x ", " y "); }"
    } else if (mode == "ldsm") {
      if (index(body, "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16{%0,%1,%2,%3},[%4];")) tr = "true"
      else if (index(body, "ldmatrix.sync.aligned.m8n8.x4.shared.b16{%0,%1,%2,%3},[%4];")) tr = "false"
      else fail("an ldsm helper is not an ldmatrix .x4 emu.hpp emulates: " body)
      if (!index(body, ":\"=r\"(r[0]),\"=r\"(r[1]),\"=r\"(r[2]),\"=r\"(r[3]):\"r\"(smem_u32(p)));"))
        fail("an ldsm helper has other operands than r[0..3] and smem_u32(p): " body)
      print head "{ emu::ldmatrix_x4(r, p, " tr "); }"
    } else {
      if (!index(body, "\"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32{%0,%1,%2,%3},{%4,%5,%6,%7},{%8,%9},\"\"{%0,%1,%2,%3};\":\"+f\"(d[0]),\"+f\"(d[1]),\"+f\"(d[2]),\"+f\"(d[3]):\"r\"(a[0]),\"r\"(a[1]),\"r\"(a[2]),\"r\"(a[3]),\"r\"(b0),\"r\"(b1));"))
        fail("mma_bf16_16816 is not the mma.sync emu.hpp emulates: " body)
      print head "{ emu::mma_bf16(d, a, b0, b1); }"
    }
    mode = ""; ++swapped
  }
  mode != "" { if ($0 ~ /^}/) finish(); else body = body $0; next }
  /^__device__.*[ \t]pack_bf16x2\(/ { start("pack", $0); next }
  /^__device__.*[ \t]ldsm_x4(_trans)?\(/ { start("ldsm", $0); next }
  /^__device__.*[ \t]mma_bf16_16816\(/ { start("mma", $0); next }
  { print }
  END {
    if (!bad && swapped != 4) { print "kernel_emu: found " swapped + 0 " of the 4 PTX helpers in mma_bf16.cuh" > "/dev/stderr"; exit 1 }
  }
' "$kernels/mma_bf16.cuh" > "$work/mma_bf16.cuh"
# The kernel files include "common.cuh" / "mma_bf16.cuh" from their own folder: copies make them
# see the swaps.
cp "$kernels"/*.cu "$work/"
if grep -nE '\basm\b *(volatile)? *\(' "$work/common.cuh" "$work/mma_bf16.cuh" "$work"/*.cu >&2; then
  echo "kernel_emu: inline PTX that emu.hpp does not emulate (above)" >&2
  exit 1
fi
