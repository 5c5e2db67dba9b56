"""Checks that the kernel emulation (run.sh) has teeth: each mutant below is a small, realistic bug
put into a copy of kernels/ (a swapped fragment register, a missing barrier, an off-by-one bound,
...), and run.sh must fail on every one. Not part of `cargo test` (about 6 minutes); run it after
changing emu.hpp, main.cpp or main_bf16.cpp. Each mutant runs only the driver of its file. A mutant whose text no longer occurs in kernels/ is reported as
stale, to be updated with the kernels.

Usage: python3 tools/kernel_emu/mutants.py [TEXT]  (TEXT: only the mutants whose name holds it)
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(HERE, "..", "..", "kernels")
FILES = ["common.cuh", "conv.cu", "matmul.cu", "mma_bf16.cuh", "corr_warp_bf16.cu"]
BF16_FILES = {"mma_bf16.cuh", "corr_warp_bf16.cu"}

# name, file, text, replacement
MUTANTS = [
    (
        "A fragment a1 reads A[g][t+4] (a2's element)",
        "common.cuh",
        "af[i][1] = __float_as_uint(As[ks + t][r + 8]);",
        "af[i][1] = __float_as_uint(As[ks + t + 4][r]);",
    ),
    (
        "tf32 operands not rounded",
        "common.cuh",
        "static float prep(float v) { return tf32_round(v); }",
        "static float prep(float v) { return v; }",
    ),
    (
        "mma store bound off by one (writes past the output)",
        "common.cuh",
        "                    if (c >= cols) continue;",
        "                    if (c > cols) continue;",
    ),
    (
        "matmul: no barrier after the tile product",
        "matmul.cu",
        "                    tile.product(As, Bs);\n                    __syncthreads();",
        "                    tile.product(As, Bs);",
    ),
    (
        "matmul: one thread skips a barrier",
        "matmul.cu",
        "                    __syncthreads();\n                    tile.product(As, Bs);",
        "                    if (threadIdx.x != 77) __syncthreads();\n                    tile.product(As, Bs);",
    ),
    (
        "matmul: A tile not zeroed past m / k (stale shared memory; detected with clang++)",
        "matmul.cu",
        "        float v = 0.f;\n        if (gm < p.m && gk < p.k) v = p.trans_a ? A[gk * p.lda + gm] : A[gm * p.lda + gk];\n"
        "        As[kk][r] = T::prep(v);",
        "        if (gm < p.m && gk < p.k) As[kk][r] = T::prep(p.trans_a ? A[gk * p.lda + gm] : A[gm * p.lda + gk]);",
    ),
    (
        "conv forward: weight row bound off by one (reads past w)",
        "conv.cu",
        "As[kk][r] = T::prep((co < d.mg && gk < d.k)",
        "As[kk][r] = T::prep((co <= d.mg && gk < d.k)",
    ),
    (
        "conv forward: no barrier after the row table",
        "conv.cu",
        "                    fill_rowtab<BK>(a, d, k0, d.hw, tab);\n                    __syncthreads();",
        "                    fill_rowtab<BK>(a, d, k0, d.hw, tab);",
    ),
    # ---- bf16 corr_warp (main_bf16.cpp) ----
    (
        "bf16: cvt operands swapped (lo in the upper half)",
        "mma_bf16.cuh",
        ': "=r"(r) : "f"(hi), "f"(lo));',
        ': "=r"(r) : "f"(lo), "f"(hi));',
    ),
    (
        "bf16: ldsm_x4_trans issues ldmatrix without .trans",
        "mma_bf16.cuh",
        "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
    ),
    (
        "bf16: ldmatrix [n][k] column offset of the [k][n] layout",
        "mma_bf16.cuh",
        "ldsm_nk_col(int lane) { return ((lane >> 3) & 1) << 3; }",
        "ldsm_nk_col(int lane) { return (lane >> 4) << 3; }",
    ),
    (
        "bf16: gemm B tile loaded without .trans",
        "corr_warp_bf16.cu",
        "ldsm_x4_trans(bfr[nj], Bs",
        "ldsm_x4(bfr[nj], Bs",
    ),
    (
        "bf16 forward: P fragment registers a1 / a2 swapped",
        "corr_warp_bf16.cu",
        "const unsigned pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),\n"
        "                                            pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),\n"
        "                                            pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),",
        "const unsigned pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),\n"
        "                                            pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),\n"
        "                                            pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),",
    ),
    (
        "bf16 forward: no barrier after staging v",
        "corr_warp_bf16.cu",
        "stage_rows(Vs, VLD, vp + (b * a.mp + m0) * VP, VP, VP / 8);\n                __syncthreads();",
        "stage_rows(Vs, VLD, vp + (b * a.mp + m0) * VP, VP, VP / 8);",
    ),
    (
        "bf16 forward: key mask off by one (a padded key enters the softmax)",
        "corr_warp_bf16.cu",
        "const bool key = m0 + 8 * j + 2 * t + (e & 1) < a.m;",
        "const bool key = m0 + 8 * j + 2 * t + (e & 1) <= a.m;",
    ),
    (
        "bf16 forward: row max shuffled across the wrong lanes",
        "corr_warp_bf16.cu",
        "tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(FULL_MASK, tmax[h], 2));",
        "tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(FULL_MASK, tmax[h], 4));",
    ),
    (
        "bf16 backward: lse read without the slab offset",
        "corr_warp_bf16.cu",
        "lse2[h] = live[h] ? lse[b * a.n + a.r0 + rl] * LOG2E_F : 0.f;",
        "lse2[h] = live[h] ? lse[b * a.n + rl] * LOG2E_F : 0.f;",
    ),
    (
        "bf16 backward: D from the f32 dout (the bug the emulation found)",
        "corr_warp_bf16.cu",
        "const float d = __uint_as_float(pack_bf16x2(dout[r * a.v + c], 0.f) << 16);",
        "const float d = dout[r * a.v + c];",
    ),
    (
        "bf16 gemm: B tile column bound dropped (reads past the packed dout)",
        "corr_warp_bf16.cu",
        "if (k0 + br < p.k && j0 + bc < p.n)",
        "if (k0 + br < p.k)",
    ),
    (
        "bf16 backward: key mask off by one (P of a padded key)",
        "corr_warp_bf16.cu",
        "const bool key = m0 + 8 * j + 2 * t + e < a.m;",
        "const bool key = m0 + 8 * j + 2 * t + e <= a.m;",
    ),
]


def first_complaint(log):
    """The emulator's abort message or the first failing check, shortened."""
    for line in log.splitlines():
        if line.startswith("emu:") or "FAIL" in line:
            return " ".join(line.split())[:110]
    return "(no message)"


def main():
    survivors = stale = 0
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    chosen = [m for m in MUTANTS if only in m[0]]
    for name, file, old, new in chosen:
        with tempfile.TemporaryDirectory() as d:
            for f in FILES:
                shutil.copy(os.path.join(KERNELS, f), d)
            path = os.path.join(d, file)
            text = open(path).read()
            if text.count(old) != 1:
                print(f"STALE    {name}: its text occurs {text.count(old)} times in {file}")
                stale += 1
                continue
            open(path, "w").write(text.replace(old, new))
            driver = "main_bf16" if file in BF16_FILES else "main"
            env = dict(os.environ, KERNELS_DIR=d, KERNEL_EMU_DRIVERS=driver)
            run = subprocess.run(
                ["bash", os.path.join(HERE, "run.sh")], env=env, capture_output=True, text=True, timeout=600
            )
            log = run.stdout + run.stderr
            if run.returncode == 0:
                print(f"SURVIVED {name}")
                survivors += 1
            else:
                print(f"caught   {name}: {first_complaint(log)}")
    print(f"{len(chosen)} mutants, {survivors} survived, {stale} stale")
    return 1 if survivors or stale else 0


if __name__ == "__main__":
    sys.exit(main())
