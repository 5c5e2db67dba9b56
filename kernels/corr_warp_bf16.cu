// corr_warp on bf16 tensor cores (mma.sync m16n8k16, f32 accumulators), chosen by the launcher
// at Precision::Bf16 (src/backend/cuda/launch/corr_warp/bf16.rs). Same maths as corr_warp.cu;
// the normalisation and its backward stay the f32 kernels there, only the N × M products run
// here. Nothing stores the whole N × M matrix: the forward is flash-style, the backward works on
// slabs of query rows.
//
// Operands are packed once per call (corr_warp_pack_bf16) into bf16, position-major and
// zero-padded, so that every tile load is an unguarded 16-byte copy:
//   qp [B, NP, CP] = q̂ᵀ, kp [B, MP, CP] = k̂ᵀ, vp [B, MP, VP] = v, dop [B, NP, VP] = dout,
//   with NP, MP multiples of CB_TILE, CP of CB_BC and VP of 16 (VP ≤ CB_VMAX).
// Zero channels add nothing to q̂ᵀk̂; padded keys are masked to −inf before the softmax; padded
// query rows are computed and never stored.
//
// Kernels:
// - corr_warp_pack_bf16: f32 [B, rows, cols] at any strides -> bf16 [B, rows_p, cols_p], through
//   a 64 × 64 shared tile (reads coalesced along rows for q/k, whose positions are contiguous).
// - corr_warp_forward_v{16,32,48,64}_bf16 (VP): a block of 4 warps owns 64 query rows (16 per
//   warp) and walks the keys in tiles of 64: S = q̂ᵀk̂ over CP in chunks of CB_BC staged in shared
//   memory, online softmax in registers (log2 domain), P rounded to bf16 and fed straight from
//   the S accumulators as the A operand of P·v. Writes out [B, N, V] and the natural-log
//   log-sum-exp of scale·S per row, lse [B, N].
// - corr_warp_delta_bf16: D = rowsum(dout ∘ out) [B, N] (f32).
// - corr_warp_backward_ds_v{16,32,48,64}_bf16: for one slab of query rows [r0, r0 + rows): a
//   block owns a 64 × 64 (rows × keys) tile, recomputes S, P = exp(scale·S − lse), dP = dout·vᵀ,
//   dS = scale·P∘(dP − D), and writes P and dS as bf16 [B, RS, MP] (RS = rows rounded up to 64;
//   padded rows and keys hold zeros).
// - corr_warp_gemm_{nn,tn}_bf16: out (+)= op(A)·B over bf16 operands with f32 accumulation and
//   any output strides: dq̂ = dS·k̂ (nn), dk̂ += dSᵀ·q̂ and dv += Pᵀ·dout (tn).
#include "common.cuh"
#include "mma_bf16.cuh"

#define CB_TILE 64
#define CB_BC 64
#define CB_THREADS 128
#define CB_VMAX 64
#define CB_LD (CB_BC + 8)  // shared row stride (bf16): 144 bytes, ldmatrix rows on distinct banks
#define CG_BM 64
#define CG_BN 64
#define CG_BK 32

static_assert(CB_THREADS == 4 * 32 && CB_TILE == 4 * 16, "4 warps x 16 query rows");
static_assert(CB_BC % 16 == 0 && CB_TILE % 16 == 0, "mma k-steps");

// Mirrors `CorrPackArgs` (src/backend/cuda/params.rs).
struct CorrPackArgs {
    i64 b, rows, cols, rows_p, cols_p, s_b, s_row, s_col;
};

// Mirrors `CorrBf16Args`: sizes, padded sizes, the slab [r0, r0 + rows) padded to rs rows.
struct CorrBf16Args {
    i64 b, c, n, m, v, cp, np, mp, vp, r0, rows, rs;
    float scale;
    int _pad;
};

// Mirrors `CorrGemmArgs`: out[o_off + z·o_sb + i·o_si + j·o_sj] (+)= Σ_k A(i, k)·B(k, j) for
// i < m_out, j < n_out; A(i, k) = a[a_off + z·stride_a + i·lda + k] (nn) or
// a[a_off + z·stride_a + k·lda + i] (tn); B(k, j) = b[b_off + z·stride_b + k·ldb + j]. Operand
// reads are bounded by m, n, k (multiples of 8, as are lda, ldb and the offsets).
struct CorrGemmArgs {
    i64 m, n, k, batch, lda, ldb, a_off, b_off, stride_a, stride_b, o_off, o_sb, o_si, o_sj, m_out, n_out;
    int accumulate;
    int _pad;
};

// ---- packing ----------------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(256)
    corr_warp_pack_bf16(const CorrPackArgs a, const float* __restrict__ src, bf16* __restrict__ dst) {
    __shared__ float tile[64][65];  // [col][row]
    const i64 tr = (a.rows_p + 63) / 64, tc = (a.cols_p + 63) / 64, tiles = a.b * tr * tc;
    for (i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const i64 b = t / (tr * tc), r0 = (t / tc) % tr * 64, c0 = t % tc * 64;
        for (int e = threadIdx.x; e < 64 * 64; e += blockDim.x) {
            const int c = e / 64, r = e % 64;
            const i64 rr = r0 + r, cc = c0 + c;
            tile[c][r] = (rr < a.rows && cc < a.cols) ? src[b * a.s_b + rr * a.s_row + cc * a.s_col] : 0.f;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < 64 * 32; e += blockDim.x) {
            const int r = e / 32, c = 2 * (e % 32);
            const i64 rr = r0 + r, cc = c0 + c;
            if (rr < a.rows_p && cc < a.cols_p)
                *reinterpret_cast<unsigned*>(dst + (b * a.rows_p + rr) * a.cols_p + cc) =
                    pack_bf16x2(tile[c][r], tile[c + 1][r]);
        }
        __syncthreads();
    }
}

// ---- shared tile routines ---------------------------------------------------------------------

// Copies 64 rows of `cols8` 16-byte vectors from global (row stride ldg) to shared (stride lds).
__device__ __forceinline__ void stage_rows(bf16* s, int lds, const bf16* g, i64 ldg, int cols8) {
    for (int e = threadIdx.x; e < CB_TILE * cols8; e += CB_THREADS) {
        const int r = e / cols8, c = e % cols8;
        *reinterpret_cast<uint4*>(s + r * lds + c * 8) = *reinterpret_cast<const uint4*>(g + r * ldg + c * 8);
    }
}

// s = q̂ᵀk̂ for this warp's 16 query rows × the tile's 64 keys (n-tile j = keys 8j..8j+7),
// qg / kg pointing at the tile's first packed row. Starts with a barrier, so the caller's
// previous readers of Qs / Ks are done.
__device__ __forceinline__ void s_tile(float (&s)[8][4], bf16* Qs, bf16* Ks, const bf16* qg, const bf16* kg, i64 cp) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] = 0.f;
    for (i64 c0 = 0; c0 < cp; c0 += CB_BC) {
        __syncthreads();
        stage_rows(Qs, CB_LD, qg + c0, cp, CB_BC / 8);
        stage_rows(Ks, CB_LD, kg + c0, cp, CB_BC / 8);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < CB_BC / 16; ++kk) {
            unsigned af[4];
            ldsm_x4(af, Qs + (16 * w + ldsm_a_row(lane)) * CB_LD + 16 * kk + ldsm_a_col(lane));
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                unsigned bf[4];
                ldsm_x4(bf, Ks + (16 * j + ldsm_nk_row(lane)) * CB_LD + 16 * kk + ldsm_nk_col(lane));
                mma_bf16_16816(s[2 * j], af, bf[0], bf[1]);
                mma_bf16_16816(s[2 * j + 1], af, bf[2], bf[3]);
            }
        }
    }
}

// ---- forward ----------------------------------------------------------------------------------

template <int VP>
__device__ __forceinline__ void forward_bf16(const CorrBf16Args& a, const bf16* __restrict__ qp,
                                             const bf16* __restrict__ kp, const bf16* __restrict__ vp,
                                             float* __restrict__ out, float* __restrict__ lse) {
    static_assert(VP % 16 == 0 && VP <= CB_VMAX, "VP");
    constexpr int NV = VP / 8, VLD = VP + 8;
    __shared__ __align__(16) bf16 Qs[CB_TILE * CB_LD];
    __shared__ __align__(16) bf16 Ks[CB_TILE * CB_LD];
    __shared__ __align__(16) bf16 Vs[CB_TILE * VLD];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const float sl2 = a.scale * LOG2E_F;
    const i64 tiles_n = a.np / CB_TILE;
    for (i64 b = blockIdx.z; b < a.b; b += gridDim.z) {
        for (i64 tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
            const i64 n0 = tn * CB_TILE;
            const bf16* qg = qp + (b * a.np + n0) * a.cp;
            float o[NV][4], m2[2] = {-f32_inf(), -f32_inf()}, l[2] = {0.f, 0.f};
#pragma unroll
            for (int j = 0; j < NV; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) o[j][e] = 0.f;
            for (i64 m0 = 0; m0 < a.m; m0 += CB_TILE) {
                float s[8][4];
                s_tile(s, Qs, Ks, qg, kp + (b * a.mp + m0) * a.cp, a.cp);
                // Online softmax of rows g (h = 0) and g + 8 (h = 1); the 4 lanes of a group
                // share a row. Key m0 < m is valid, so every row's tile max is finite.
                float tmax[2] = {-f32_inf(), -f32_inf()};
#pragma unroll
                for (int j = 0; j < 8; ++j)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const bool key = m0 + 8 * j + 2 * t + (e & 1) < a.m;
                        s[j][e] = key ? s[j][e] * sl2 : -f32_inf();
                        tmax[e >> 1] = fmaxf(tmax[e >> 1], s[j][e]);
                    }
                float alpha[2];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(FULL_MASK, tmax[h], 1));
                    tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(FULL_MASK, tmax[h], 2));
                    const float mn = fmaxf(m2[h], tmax[h]);
                    alpha[h] = exp2f(m2[h] - mn);  // 0 on the first tile (m2 = −inf)
                    m2[h] = mn;
                    l[h] *= alpha[h];
                }
#pragma unroll
                for (int j = 0; j < 8; ++j)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        s[j][e] = exp2f(s[j][e] - m2[e >> 1]);
                        l[e >> 1] += s[j][e];
                    }
#pragma unroll
                for (int j = 0; j < NV; ++j)
#pragma unroll
                    for (int e = 0; e < 4; ++e) o[j][e] *= alpha[e >> 1];
                // Vs is free: every warp passed s_tile's barriers since the last P·v.
                stage_rows(Vs, VLD, vp + (b * a.mp + m0) * VP, VP, VP / 8);
                __syncthreads();
#pragma unroll
                for (int kk = 0; kk < CB_TILE / 16; ++kk) {
                    // The S accumulators of n-tiles 2kk, 2kk+1 are the A fragment of keys 16kk..
                    const unsigned pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),
                                            pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                            pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                            pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                    for (int jv = 0; jv < VP / 16; ++jv) {
                        unsigned bv[4];
                        ldsm_x4_trans(bv, Vs + (16 * kk + ldsm_kn_row(lane)) * VLD + 16 * jv + ldsm_kn_col(lane));
                        mma_bf16_16816(o[2 * jv], pa, bv[0], bv[1]);
                        mma_bf16_16816(o[2 * jv + 1], pa, bv[2], bv[3]);
                    }
                }
            }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                l[h] += __shfl_xor_sync(FULL_MASK, l[h], 1);
                l[h] += __shfl_xor_sync(FULL_MASK, l[h], 2);
                const i64 row = n0 + 16 * w + g + 8 * h;
                if (row >= a.n) continue;
                const float inv = 1.f / l[h];
#pragma unroll
                for (int j = 0; j < NV; ++j)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const i64 col = 8 * j + 2 * t + e;
                        if (col < a.v) out[(b * a.n + row) * a.v + col] = o[j][2 * h + e] * inv;
                    }
                if (t == 0) lse[b * a.n + row] = (m2[h] + log2f(l[h])) * LN2_F;
            }
        }
    }
}

// One instance per packed v width (written out: tests grep the symbols).
extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_forward_v16_bf16(const CorrBf16Args a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                               const bf16* __restrict__ vp, float* __restrict__ out, float* __restrict__ lse) {
    forward_bf16<16>(a, qp, kp, vp, out, lse);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_forward_v32_bf16(const CorrBf16Args a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                               const bf16* __restrict__ vp, float* __restrict__ out, float* __restrict__ lse) {
    forward_bf16<32>(a, qp, kp, vp, out, lse);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_forward_v48_bf16(const CorrBf16Args a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                               const bf16* __restrict__ vp, float* __restrict__ out, float* __restrict__ lse) {
    forward_bf16<48>(a, qp, kp, vp, out, lse);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_forward_v64_bf16(const CorrBf16Args a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                               const bf16* __restrict__ vp, float* __restrict__ out, float* __restrict__ lse) {
    forward_bf16<64>(a, qp, kp, vp, out, lse);
}

// ---- backward ---------------------------------------------------------------------------------

// dout is rounded to bf16 as packed for dP = dout·vᵀ: with the f32 dout, D would differ from
// Σⱼ Pᵢⱼ·dPᵢⱼ by u·|dout·out| and every row of dS would carry that offset (dq̂, dk̂ ≠ 0 where the
// exact gradient is 0, e.g. at M = 1).
extern "C" __global__ void corr_warp_delta_bf16(const CorrBf16Args a, const float* __restrict__ out,
                                                const float* __restrict__ dout, float* __restrict__ delta) {
    GRID_LOOP(r, a.b * a.n) {
        float s = 0.f;
        for (i64 c = 0; c < a.v; ++c) {
            const float d = __uint_as_float(pack_bf16x2(dout[r * a.v + c], 0.f) << 16);
            s = fmaf(out[r * a.v + c], d, s);
        }
        delta[r] = s;
    }
}

template <int VP>
__device__ __forceinline__ void ds_bf16(const CorrBf16Args& a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                                        const bf16* __restrict__ vp, const bf16* __restrict__ dop,
                                        const float* __restrict__ lse, const float* __restrict__ delta,
                                        bf16* __restrict__ p_out, bf16* __restrict__ ds_out) {
    static_assert(VP % 16 == 0 && VP <= CB_VMAX, "VP");
    constexpr int VLD = VP + 8;
    __shared__ __align__(16) bf16 Qs[CB_TILE * CB_LD];
    __shared__ __align__(16) bf16 Ks[CB_TILE * CB_LD];
    __shared__ __align__(16) bf16 Vs[CB_TILE * VLD];
    __shared__ __align__(16) bf16 Ds[CB_TILE * VLD];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const float sl2 = a.scale * LOG2E_F;
    const i64 tiles_m = a.mp / CB_TILE, tiles_r = a.rs / CB_TILE;
    for (i64 b = blockIdx.z; b < a.b; b += gridDim.z) {
        for (i64 tr = blockIdx.y; tr < tiles_r; tr += gridDim.y) {
            for (i64 tm = blockIdx.x; tm < tiles_m; tm += gridDim.x) {
                const i64 rl0 = tr * CB_TILE, n0 = a.r0 + rl0, m0 = tm * CB_TILE;
                float s[8][4], dp[8][4];
                s_tile(s, Qs, Ks, qp + (b * a.np + n0) * a.cp, kp + (b * a.mp + m0) * a.cp, a.cp);
                // Qs / Ks may still be read by other warps; Vs / Ds were last read before
                // s_tile's barriers.
                stage_rows(Vs, VLD, vp + (b * a.mp + m0) * VP, VP, VP / 8);
                stage_rows(Ds, VLD, dop + (b * a.np + n0) * VP, VP, VP / 8);
                __syncthreads();
#pragma unroll
                for (int j = 0; j < 8; ++j)
#pragma unroll
                    for (int e = 0; e < 4; ++e) dp[j][e] = 0.f;
                // dP = dout·vᵀ: A = dout rows [16 × VP], B[k = value col][n = key] = v[key][col],
                // stored [n][k] in Vs.
#pragma unroll
                for (int kk = 0; kk < VP / 16; ++kk) {
                    unsigned af[4];
                    ldsm_x4(af, Ds + (16 * w + ldsm_a_row(lane)) * VLD + 16 * kk + ldsm_a_col(lane));
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        unsigned bf[4];
                        ldsm_x4(bf, Vs + (16 * j + ldsm_nk_row(lane)) * VLD + 16 * kk + ldsm_nk_col(lane));
                        mma_bf16_16816(dp[2 * j], af, bf[0], bf[1]);
                        mma_bf16_16816(dp[2 * j + 1], af, bf[2], bf[3]);
                    }
                }
                float lse2[2], dd[2];
                bool live[2];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const i64 rl = rl0 + 16 * w + g + 8 * h;  // row inside the slab
                    live[h] = rl < a.rows;
                    lse2[h] = live[h] ? lse[b * a.n + a.r0 + rl] * LOG2E_F : 0.f;
                    dd[h] = live[h] ? delta[b * a.n + a.r0 + rl] : 0.f;
                }
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const i64 rl = rl0 + 16 * w + g + 8 * h;
                    bf16* prow = p_out + (b * a.rs + rl) * a.mp + m0;
                    bf16* drow = ds_out + (b * a.rs + rl) * a.mp + m0;
#pragma unroll
                    for (int j = 0; j < 8; ++j) {
                        float p[2], ds[2];
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            const bool key = m0 + 8 * j + 2 * t + e < a.m;
                            p[e] = (live[h] && key) ? exp2f(s[j][2 * h + e] * sl2 - lse2[h]) : 0.f;
                            ds[e] = p[e] * (dp[j][2 * h + e] - dd[h]) * a.scale;
                        }
                        const int col = 8 * j + 2 * t;
                        *reinterpret_cast<unsigned*>(prow + col) = pack_bf16x2(p[0], p[1]);
                        *reinterpret_cast<unsigned*>(drow + col) = pack_bf16x2(ds[0], ds[1]);
                    }
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_backward_ds_v16_bf16(const CorrBf16Args a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                                   const bf16* __restrict__ vp, const bf16* __restrict__ dop,
                                   const float* __restrict__ lse, const float* __restrict__ delta,
                                   bf16* __restrict__ p_out, bf16* __restrict__ ds_out) {
    ds_bf16<16>(a, qp, kp, vp, dop, lse, delta, p_out, ds_out);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_backward_ds_v32_bf16(const CorrBf16Args a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                                   const bf16* __restrict__ vp, const bf16* __restrict__ dop,
                                   const float* __restrict__ lse, const float* __restrict__ delta,
                                   bf16* __restrict__ p_out, bf16* __restrict__ ds_out) {
    ds_bf16<32>(a, qp, kp, vp, dop, lse, delta, p_out, ds_out);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_backward_ds_v48_bf16(const CorrBf16Args a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                                   const bf16* __restrict__ vp, const bf16* __restrict__ dop,
                                   const float* __restrict__ lse, const float* __restrict__ delta,
                                   bf16* __restrict__ p_out, bf16* __restrict__ ds_out) {
    ds_bf16<48>(a, qp, kp, vp, dop, lse, delta, p_out, ds_out);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_backward_ds_v64_bf16(const CorrBf16Args a, const bf16* __restrict__ qp, const bf16* __restrict__ kp,
                                   const bf16* __restrict__ vp, const bf16* __restrict__ dop,
                                   const float* __restrict__ lse, const float* __restrict__ delta,
                                   bf16* __restrict__ p_out, bf16* __restrict__ ds_out) {
    ds_bf16<64>(a, qp, kp, vp, dop, lse, delta, p_out, ds_out);
}

// ---- GEMM -------------------------------------------------------------------------------------

// Block tile CG_BM × CG_BN, k in steps of CG_BK; 4 warps in 2 × 2, each a 32 × 32 warp tile
// (2 m16 × 4 n8 mma tiles).
template <bool TRANS_A>
__device__ __forceinline__ void gemm_bf16(const CorrGemmArgs& p, const bf16* __restrict__ A, const bf16* __restrict__ B,
                                          float* __restrict__ out) {
    constexpr int ALD = TRANS_A ? CG_BM + 8 : CG_BK + 8, BLD = CG_BN + 8;
    __shared__ __align__(16) bf16 As[TRANS_A ? CG_BK * ALD : CG_BM * ALD];
    __shared__ __align__(16) bf16 Bs[CG_BK * BLD];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int wm = (w >> 1) * 32, wn = (w & 1) * 32;
    const i64 tiles_m = (p.m_out + CG_BM - 1) / CG_BM, tiles_n = (p.n_out + CG_BN - 1) / CG_BN;
    for (i64 z = blockIdx.z; z < p.batch; z += gridDim.z) {
        const bf16* Az = A + p.a_off + z * p.stride_a;
        const bf16* Bz = B + p.b_off + z * p.stride_b;
        for (i64 ty = blockIdx.y; ty < tiles_m; ty += gridDim.y) {
            for (i64 tx = blockIdx.x; tx < tiles_n; tx += gridDim.x) {
                const i64 i0 = ty * CG_BM, j0 = tx * CG_BN;
                float acc[2][4][4];
#pragma unroll
                for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                    for (int nj = 0; nj < 4; ++nj)
#pragma unroll
                        for (int e = 0; e < 4; ++e) acc[mi][nj][e] = 0.f;
                for (i64 k0 = 0; k0 < p.k; k0 += CG_BK) {
                    __syncthreads();
                    // 256 16-byte vectors per operand tile, 2 per thread; zeros outside m, n, k.
                    for (int e = threadIdx.x; e < 256; e += CB_THREADS) {
                        uint4 va = make_uint4(0, 0, 0, 0), vb = make_uint4(0, 0, 0, 0);
                        int ar, ac;
                        if (TRANS_A) {
                            ar = e / 8;  // k
                            ac = e % 8 * 8;  // m
                            if (k0 + ar < p.k && i0 + ac < p.m)
                                va = *reinterpret_cast<const uint4*>(Az + (k0 + ar) * p.lda + i0 + ac);
                        } else {
                            ar = e / 4;  // m
                            ac = e % 4 * 8;  // k
                            if (i0 + ar < p.m && k0 + ac < p.k)
                                va = *reinterpret_cast<const uint4*>(Az + (i0 + ar) * p.lda + k0 + ac);
                        }
                        *reinterpret_cast<uint4*>(As + ar * ALD + ac) = va;
                        const int br = e / 8, bc = e % 8 * 8;
                        if (k0 + br < p.k && j0 + bc < p.n)
                            vb = *reinterpret_cast<const uint4*>(Bz + (k0 + br) * p.ldb + j0 + bc);
                        *reinterpret_cast<uint4*>(Bs + br * BLD + bc) = vb;
                    }
                    __syncthreads();
#pragma unroll
                    for (int ks = 0; ks < CG_BK / 16; ++ks) {
                        unsigned af[2][4], bfr[2][4];
#pragma unroll
                        for (int mi = 0; mi < 2; ++mi) {
                            const int mb = wm + 16 * mi;
                            if (TRANS_A)
                                ldsm_x4_trans(af[mi], As + (16 * ks + ldsm_nk_row(lane)) * ALD + mb + ldsm_nk_col(lane));
                            else
                                ldsm_x4(af[mi], As + (mb + ldsm_a_row(lane)) * ALD + 16 * ks + ldsm_a_col(lane));
                        }
#pragma unroll
                        for (int nj = 0; nj < 2; ++nj)
                            ldsm_x4_trans(bfr[nj], Bs + (16 * ks + ldsm_kn_row(lane)) * BLD + wn + 16 * nj + ldsm_kn_col(lane));
#pragma unroll
                        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                            for (int nj = 0; nj < 2; ++nj) {
                                mma_bf16_16816(acc[mi][2 * nj], af[mi], bfr[nj][0], bfr[nj][1]);
                                mma_bf16_16816(acc[mi][2 * nj + 1], af[mi], bfr[nj][2], bfr[nj][3]);
                            }
                    }
                }
                float* oz = out + p.o_off + z * p.o_sb;
#pragma unroll
                for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                    for (int nj = 0; nj < 4; ++nj)
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const i64 i = i0 + wm + 16 * mi + g + 8 * (e >> 1), j = j0 + wn + 8 * nj + 2 * t + (e & 1);
                            if (i < p.m_out && j < p.n_out) {
                                float* o = oz + i * p.o_si + j * p.o_sj;
                                *o = p.accumulate ? *o + acc[mi][nj][e] : acc[mi][nj][e];
                            }
                        }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_gemm_nn_bf16(const CorrGemmArgs p, const bf16* __restrict__ a, const bf16* __restrict__ b,
                           float* __restrict__ out) {
    gemm_bf16<false>(p, a, b, out);
}

extern "C" __global__ void __launch_bounds__(CB_THREADS)
    corr_warp_gemm_tn_bf16(const CorrGemmArgs p, const bf16* __restrict__ a, const bf16* __restrict__ b,
                           float* __restrict__ out) {
    gemm_bf16<true>(p, a, b, out);
}
