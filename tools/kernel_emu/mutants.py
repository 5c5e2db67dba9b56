"""Checks that the kernel emulation (run.sh) has teeth: each mutant below is a small, realistic bug
put into a copy of kernels/ (a swapped fragment register, a missing barrier, an off-by-one bound,
...), and run.sh must fail on every one. Not part of `cargo test` (about 10 minutes); run it after
changing emu.hpp or a driver (main.cpp, main_bf16.cpp, main_ops.cpp). Each mutant runs only the driver of its file. A mutant whose text no longer occurs in kernels/ is reported as
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
OPS_FILES = {"elementwise.cu", "layout.cu", "reduce.cu", "pool.cu", "resize.cu", "unfold.cu", "loss.cu", "adam.cu"}
FILES = ["common.cuh", "conv.cu", "matmul.cu", "mma_bf16.cuh", "corr_warp_bf16.cu"] + sorted(OPS_FILES)
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
    # ---- elementwise / layout / reduce / spatial / train (main_ops.cpp) ----
    (
        "ops: reduce block max reads unwritten warp slots",
        "reduce.cu",
        "v = lane < nw ? sh[lane] : -f32_inf();",
        "v = sh[lane];",
    ),
    (
        "ops: reduce max backward (block) counts only its own thread's ties",
        "reduce.cu",
        "        hits = block_sum(hits, sh);\n",
        "",
    ),
    (
        "ops: reduce max backward: a NaN maximum is not attained",
        "reduce.cu",
        "return xv == yv || (f32_isnan(xv) && f32_isnan(yv));",
        "return xv == yv;",
    ),
    (
        "ops: reduce thread sum drops the last reduced element",
        "reduce.cu",
        "for (i64 r = 0; r < a.red_n; ++r) s += (double)xo[red_offset(a, r)];",
        "for (i64 r = 0; r + 1 < a.red_n; ++r) s += (double)xo[red_offset(a, r)];",
    ),
    (
        "ops: transpose: no barrier before the next tile overwrites the staged one",
        "layout.cu",
        "                __syncthreads();\n            }\n        }",
        "            }\n        }",
    ),
    (
        "ops: transpose write without the row bound (writes past y)",
        "layout.cu",
        "if (r < a.rows && c < a.cols) yb[c * a.rows + r]",
        "if (c < a.cols) yb[c * a.rows + r]",
    ),
    (
        "ops: concat row stride of the input",
        "layout.cu",
        "y[o * a.row + a.at + j] = x[i];",
        "y[o * a.width + a.at + j] = x[i];",
    ),
    (
        "ops: copy_strided ignores the outermost dim",
        "layout.cu",
        "        for (int d = a.rank - 1; d >= 0; --d) {\n            off += (rest % a.dims[d]) * a.strides[d];",
        "        for (int d = a.rank - 1; d > 0; --d) {\n            off += (rest % a.dims[d]) * a.strides[d];",
    ),
    (
        "ops: binary broadcast indexes b with a's strides",
        "elementwise.cu",
        "ob += idx * a.strides_b[d];",
        "ob += idx * a.strides_a[d];",
    ),
    (
        "ops: prelu alpha partials stored [splits, channels]",
        "elementwise.cu",
        "partial[c * gridDim.y + s] = (float)acc;",
        "partial[c + s * gridDim.x] = (float)acc;",
    ),
    (
        "ops: sigmoid backward without the y factor",
        "elementwise.cu",
        "return g * y * (1.f - y);",
        "return g * (1.f - y);",
    ),
    (
        "ops: pool backward misses the last covering window",
        "pool.cu",
        "hi = (i + pad) / s;",
        "hi = (i + pad - 1) / s;",
    ),
    (
        "ops: avg pool ignores count_include_pad",
        "pool.cu",
        "if (a.count_include_pad) return (float)(a.kh * a.kw);",
        "if (0) return (float)(a.kh * a.kw);",
    ),
    (
        "ops: max pool takes the last of tied maxima",
        "pool.cu",
        "if (v > best || f32_isnan(v)) {",
        "if (v >= best || f32_isnan(v)) {",
    ),
    (
        "ops: bilinear align_corners scale of the unaligned mode",
        "resize.cu",
        "__fdiv_rn((float)last, (float)(out - 1))",
        "__fdiv_rn((float)size, (float)out)",
    ),
    (
        "ops: resize backward range misses outputs whose i1 tap is i",
        "resize.cu",
        "if (tap(m, size, out, mode, align).i1 >= i) b = m;",
        "if (tap(m, size, out, mode, align).i1 > i) b = m;",
    ),
    (
        "ops: fold row bound off by one",
        "unfold.cu",
        "if (oy >= a.oh) continue;",
        "if (oy > a.oh) continue;",
    ),
    (
        "ops: unfold dilation of the other axis",
        "unfold.cu",
        "const int ix = ox * a.stride_w - a.pad_w + kj * a.dil_w;",
        "const int ix = ox * a.stride_w - a.pad_w + kj * a.dil_h;",
    ),
    (
        "ops: loss finish drops the last partial",
        "loss.cu",
        "for (i64 i = threadIdx.x; i < a.blocks; i += LOSS_THREADS) s += partial[i];",
        "for (i64 i = threadIdx.x; i + 1 < a.blocks; i += LOSS_THREADS) s += partial[i];",
    ),
    (
        "ops: adam v with beta1",
        "adam.cu",
        "(1.f - a.beta2) * g * g",
        "(1.f - a.beta1) * g * g",
    ),
    (
        "ops: adam without the bias-2 correction",
        "adam.cu",
        "sqrtf(vi) / a.bc2_sqrt + a.eps",
        "sqrtf(vi) + a.eps",
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
            driver = "main_bf16" if file in BF16_FILES else "main_ops" if file in OPS_FILES else "main"
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
