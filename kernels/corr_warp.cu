// corr_warp: out = softmax_M(scale · q̂ᵀk̂) · v with q [B,C,N], k [B,C,M], v [B,M,V] -> [B,N,V];
// q̂, k̂ = q, k, or (normalize) centred over C and divided by (‖·‖ + eps) per position.
// CPU reference: src/backend/cpu/corr_warp.rs. Nothing here stores the N × M matrix.
//
// Kernels and how a launcher strings them together:
// - corr_norm_forward_f32 / corr_norm_backward_f32: the centre + L2-normalise step and its
//   backward, column kernels like PONO: block (NORM_COL_X, NORM_COL_Y), grid 1-D over
//   ceil(B·L / NORM_COL_X) tiles, looping. norms [B·L, 2] = (1/(r + eps), r), r = ‖x − mean‖.
// - corr_warp_forward_fused_f32: flash-attention style. A block owns CORR_BQ query rows and
//   CORR_VT value columns; it walks the keys in tiles of CORR_BKEY: S tile = q̂ᵀk̂ over C in steps
//   of CORR_BC through shared memory, online softmax (running row max m and sum l, the output
//   accumulator rescaled by exp(m_old − m_new)), P·v into registers. Writes out and, from the
//   blocks of the first V chunk, the per-row max and 1/sum [B, N] (for debugging / reuse).
//   Block CORR_THREADS (256 = 16 × 16, each thread 4 rows × 4 keys of S and 4 rows × 4 value
//   columns of out); grid (ceil(N/64), ceil(V/64), B), looping; static shared memory 40.3 KiB.
//   V > 64 re-computes S once per V chunk (the self-attention case: C is small there).
// - The backward is fused per slab of R query rows (R·M floats, never N·M unless R = N):
//     1. S  = scale · q̂ᵀ[:, rows] · k̂        matmul (trans_a, alpha = scale)   [B, R, M]
//     2. dA = dout[rows] · vᵀ                  matmul (trans_b)                  [B, R, M]
//     3. corr_warp_backward_rows_f32: per row, one pass of online softmax that also carries
//        D = Σ A·dA (rescaled like the sum), then A = exp(S − m)/l into S and
//        dS·scale = A·(dA − D)·scale into dA. Block: a multiple of 32 up to 1024 (256 intended);
//        grid 1-D over the B·R rows, looping.
//     4. dq̂[:, :, rows] = k̂ · dSᵀ               matmul (trans_b, ldc = N)
//     5. dk̂ += q̂[:, rows] · dS,  dv += Aᵀ · dout[rows]   matmul (beta = 1 after the first slab)
//     6. corr_norm_backward_f32 for dq and dk (normalize only).
//   With C up to 2304 a fully fused backward would need [rows, C] gradient accumulators per
//   block, which fit neither registers nor shared memory; this way S is formed once and the two
//   C-sized products run on the tiled GEMM.
// - The plain reference variant (kept for validation and for `return_attn`): matmul (S) →
//   softmax_forward_*_f32 → matmul (A·v), and for the backward matmul → softmax_backward_*_f32 →
//   matmuls on the whole [B, N, M] matrix.
#include "common.cuh"

#define NORM_COL_X 32
#define NORM_COL_Y 8
#define CORR_BQ 64
#define CORR_BKEY 64
#define CORR_BC 16
#define CORR_VT 64
#define CORR_THREADS 256

// The S-tile loader fills Qs and Ks with one index mapping, and tile_fma's 16 × 16 threads own
// 4 × 4 of each tile.
static_assert(CORR_BQ == CORR_BKEY && CORR_BQ == 64 && CORR_VT == 64 && CORR_THREADS == 256, "tile shape");

// Mirrors `CorrNormArgs` (src/backend/cuda/params.rs).
struct CorrNormArgs {
    i64 b, c, l;
    float eps;
    int _pad;
};

// Mirrors `CorrWarpArgs`.
struct CorrWarpArgs {
    i64 b, c, n, m, v;
    i64 rows;
    float scale;
    int _pad;
};

// ---- normalisation ----------------------------------------------------------------------------

// x̂ = (x − mean_C)/(r + eps) per (b, l); norms[s] = (1/(r + eps), r).
extern "C" __global__ void __launch_bounds__(NORM_COL_X * NORM_COL_Y)
    corr_norm_forward_f32(const CorrNormArgs a, const float* __restrict__ x, float* __restrict__ xh,
                          float* __restrict__ norms) {
    __shared__ Welford part[NORM_COL_Y][NORM_COL_X];
    __shared__ float stat[2][NORM_COL_X];
    const i64 nstat = a.b * a.l, tiles = (nstat + NORM_COL_X - 1) / NORM_COL_X;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const i64 s = t * NORM_COL_X + tx;
        const bool valid = s < nstat;
        const i64 bb = valid ? s / a.l : 0, base = valid ? bb * a.c * a.l + (s - bb * a.l) : 0;
        Welford w = welford_empty();
        if (valid)
            for (i64 c = ty; c < a.c; c += NORM_COL_Y) welford_push(w, x[base + c * a.l]);
        part[ty][tx] = w;
        __syncthreads();
        if (ty == 0) {
            for (int k = 1; k < NORM_COL_Y; ++k) w = welford_merge(w, part[k][tx]);
            const float r = sqrtf(w.m2), inv = 1.f / (r + a.eps);
            stat[0][tx] = w.mean;
            stat[1][tx] = inv;
            if (valid) {
                norms[2 * s] = inv;
                norms[2 * s + 1] = r;
            }
        }
        __syncthreads();
        const float mu = stat[0][tx], inv = stat[1][tx];
        if (valid)
            for (i64 c = ty; c < a.c; c += NORM_COL_Y) xh[base + c * a.l] = (x[base + c * a.l] - mu) * inv;
        __syncthreads();
    }
}

// dx from g = ∂L/∂x̂ (both [B, C, L]): with u = x − mean, r = ‖u‖, n = r + eps, x̂ = u/n,
// du = g/n − x̂·(x̂·g)/r (0 when r = 0) and dx = du − mean_C(du) = du − Σg/(C·n), since Σx̂ = 0.
extern "C" __global__ void __launch_bounds__(NORM_COL_X * NORM_COL_Y)
    corr_norm_backward_f32(const CorrNormArgs a, const float* __restrict__ xh, const float* __restrict__ norms,
                           const float* __restrict__ g, float* __restrict__ dx) {
    __shared__ float part[2][NORM_COL_Y][NORM_COL_X];
    const i64 nstat = a.b * a.l, tiles = (nstat + NORM_COL_X - 1) / NORM_COL_X;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const i64 s = t * NORM_COL_X + tx;
        const bool valid = s < nstat;
        const i64 bb = valid ? s / a.l : 0, base = valid ? bb * a.c * a.l + (s - bb * a.l) : 0;
        float sg = 0.f, sgx = 0.f;
        if (valid)
            for (i64 c = ty; c < a.c; c += NORM_COL_Y) {
                const i64 i = base + c * a.l;
                sg += g[i];
                sgx += g[i] * xh[i];
            }
        part[0][ty][tx] = sg;
        part[1][ty][tx] = sgx;
        __syncthreads();
        sg = 0.f;
        sgx = 0.f;
        for (int k = 0; k < NORM_COL_Y; ++k) {
            sg += part[0][k][tx];
            sgx += part[1][k][tx];
        }
        if (valid) {
            const float inv = norms[2 * s], r = norms[2 * s + 1];
            const float radial = r > 0.f ? sgx / r : 0.f, centre = sg * inv / (float)a.c;
            for (i64 c = ty; c < a.c; c += NORM_COL_Y) {
                const i64 i = base + c * a.l;
                dx[i] = g[i] * inv - xh[i] * radial - centre;
            }
        }
        __syncthreads();
    }
}

// ---- fused forward ----------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(CORR_THREADS)
    corr_warp_forward_fused_f32(const CorrWarpArgs a, const float* __restrict__ qh, const float* __restrict__ kh,
                                const float* __restrict__ v, float* __restrict__ out, float* __restrict__ row_max,
                                float* __restrict__ row_inv) {
    __shared__ float Qs[CORR_BC][CORR_BQ];
    __shared__ float Ks[CORR_BC][CORR_BKEY];
    __shared__ float Ps[CORR_BQ][CORR_BKEY + 1];
    __shared__ float Vs[CORR_BKEY][CORR_VT];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const i64 tiles_n = (a.n + CORR_BQ - 1) / CORR_BQ, tiles_v = (a.v + CORR_VT - 1) / CORR_VT;
    for (i64 b = blockIdx.z; b < a.b; b += gridDim.z) {
        const float* qb = qh + b * a.c * a.n;
        const float* kb = kh + b * a.c * a.m;
        const float* vb = v + b * a.m * a.v;
        for (i64 tv = blockIdx.y; tv < tiles_v; tv += gridDim.y) {
            for (i64 tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
                const i64 n0 = tn * CORR_BQ, v0 = tv * CORR_VT;
                float m[4], l[4], o[4][4];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    m[i] = -f32_inf();
                    l[i] = 0.f;
#pragma unroll
                    for (int j = 0; j < 4; ++j) o[i][j] = 0.f;
                }
                for (i64 m0 = 0; m0 < a.m; m0 += CORR_BKEY) {
                    // S tile = q̂ᵀk̂ for rows n0.., keys m0.., accumulated over C.
                    float s[4][4];
#pragma unroll
                    for (int i = 0; i < 4; ++i)
#pragma unroll
                        for (int j = 0; j < 4; ++j) s[i][j] = 0.f;
                    for (i64 c0 = 0; c0 < a.c; c0 += CORR_BC) {
#pragma unroll
                        for (int q = 0; q < CORR_BC * CORR_BQ / CORR_THREADS; ++q) {
                            const int e = threadIdx.x + CORR_THREADS * q, cc = e / CORR_BQ, r = e % CORR_BQ;
                            const i64 c = c0 + cc;
                            Qs[cc][r] = (c < a.c && n0 + r < a.n) ? qb[c * a.n + n0 + r] : 0.f;
                            Ks[cc][r] = (c < a.c && m0 + r < a.m) ? kb[c * a.m + m0 + r] : 0.f;
                        }
                        __syncthreads();
                        tile_fma<CORR_BC, CORR_BQ, CORR_BKEY, 4, 4>(Qs, Ks, ty, tx, s);
                        __syncthreads();
                    }
                    // Online softmax over this tile; the 16 threads sharing a row (same ty, lanes
                    // of one half-warp) agree on its max and sum through shuffles.
#pragma unroll
                    for (int i = 0; i < 4; ++i) {
                        float tmax = -f32_inf();
#pragma unroll
                        for (int j = 0; j < 4; ++j) {
                            const bool key = m0 + tx + 16 * j < a.m;
                            s[i][j] = key ? s[i][j] * a.scale : -f32_inf();
                            tmax = fmaxf(tmax, s[i][j]);
                        }
                        tmax = group_max(tmax, 16);
                        const float m_new = fmaxf(m[i], tmax);
                        const float alpha = m[i] == m_new ? 1.f : expf(m[i] - m_new);
                        float sum = 0.f;
#pragma unroll
                        for (int j = 0; j < 4; ++j) {
                            const bool key = m0 + tx + 16 * j < a.m;
                            s[i][j] = key ? expf(s[i][j] - m_new) : 0.f;
                            sum += s[i][j];
                        }
                        sum = group_sum(sum, 16);
                        l[i] = l[i] * alpha + sum;
                        m[i] = m_new;
#pragma unroll
                        for (int j = 0; j < 4; ++j) {
                            o[i][j] *= alpha;
                            Ps[ty + 16 * i][tx + 16 * j] = s[i][j];
                        }
                    }
#pragma unroll 1  // unrolled, the hoisted addresses of 16 loads cost ~70 registers
                    for (int q = 0; q < CORR_BKEY * CORR_VT / CORR_THREADS; ++q) {
                        const int e = threadIdx.x + CORR_THREADS * q, j = e / CORR_VT, vc = e % CORR_VT;
                        Vs[j][vc] = (m0 + j < a.m && v0 + vc < a.v) ? vb[(m0 + j) * a.v + v0 + vc] : 0.f;
                    }
                    __syncthreads();
                    // out tile += P · v tile.
#pragma unroll 8
                    for (int j = 0; j < CORR_BKEY; ++j) {
                        float p[4], w[4];
#pragma unroll
                        for (int i = 0; i < 4; ++i) p[i] = Ps[ty + 16 * i][j];
#pragma unroll
                        for (int c = 0; c < 4; ++c) w[c] = Vs[j][tx + 16 * c];
#pragma unroll
                        for (int i = 0; i < 4; ++i)
#pragma unroll
                            for (int c = 0; c < 4; ++c) o[i][c] = fmaf(p[i], w[c], o[i][c]);
                    }
                    __syncthreads();
                }
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const i64 row = n0 + ty + 16 * i;
                    if (row >= a.n) continue;
                    const float inv = 1.f / l[i];
#pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        const i64 col = v0 + tx + 16 * c;
                        if (col < a.v) out[(b * a.n + row) * a.v + col] = o[i][c] * inv;
                    }
                    if (tv == 0 && tx == 0) {
                        row_max[b * a.n + row] = m[i];
                        row_inv[b * a.n + row] = inv;
                    }
                }
            }
        }
    }
}

// ---- backward row kernel ----------------------------------------------------------------------

// Online softmax state that also carries d = Σ exp(s − m)·dA, rescaled with the sum.
struct Online3 {
    float m, l, d;
};

__device__ __forceinline__ Online3 o3_merge(Online3 a, Online3 b) {
    if (b.l == 0.f) return a;
    if (a.l == 0.f) return b;
    const float m = fmaxf(a.m, b.m), ea = expf(a.m - m), eb = expf(b.m - m);
    Online3 r;
    r.m = m;
    r.l = a.l * ea + b.l * eb;
    r.d = a.d * ea + b.d * eb;
    return r;
}

__device__ Online3 block_o3(Online3 a, float* sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        Online3 b;
        b.m = __shfl_xor_sync(FULL_MASK, a.m, o);
        b.l = __shfl_xor_sync(FULL_MASK, a.l, o);
        b.d = __shfl_xor_sync(FULL_MASK, a.d, o);
        a = o3_merge(a, b);
    }
    __syncthreads();
    if (lane == 0) {
        sh[wid] = a.m;
        sh[32 + wid] = a.l;
        sh[64 + wid] = a.d;
    }
    __syncthreads();
    Online3 r;
    r.m = -f32_inf();
    r.l = 0.f;
    r.d = 0.f;
    for (int w = 0; w < nw; ++w) {
        Online3 b;
        b.m = sh[w];
        b.l = sh[32 + w];
        b.d = sh[64 + w];
        r = o3_merge(r, b);
    }
    return r;
}

// For a.rows rows of length a.m: s holds scale·q̂ᵀk̂ and becomes A = softmax(s); da holds
// dout·vᵀ and becomes scale·A·(da − D), D = Σ_j A_j·da_j (= dout·out of the row).
extern "C" __global__ void corr_warp_backward_rows_f32(const CorrWarpArgs a, float* __restrict__ s,
                                                       float* __restrict__ da) {
    __shared__ float sh[96];
    for (i64 row = blockIdx.x; row < a.rows; row += gridDim.x) {
        float* sr = s + row * a.m;
        float* dr = da + row * a.m;
        Online3 st;
        st.m = -f32_inf();
        st.l = 0.f;
        st.d = 0.f;
        for (i64 j = threadIdx.x; j < a.m; j += blockDim.x) {
            const float v = sr[j], g = dr[j];
            if (v > st.m) {
                const float e = expf(st.m - v);
                st.l = st.l * e + 1.f;
                st.d = st.d * e + g;
                st.m = v;
            } else if (v != -f32_inf()) {
                const float p = expf(v - st.m);
                st.l += p;
                st.d += p * g;
            }
        }
        st = block_o3(st, sh);
        const float inv = 1.f / st.l, dd = st.d * inv;
        for (i64 j = threadIdx.x; j < a.m; j += blockDim.x) {
            const float p = expf(sr[j] - st.m) * inv;
            dr[j] = p * (dr[j] - dd) * a.scale;
            sr[j] = p;
        }
    }
}
