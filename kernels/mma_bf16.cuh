// bf16 tensor-core helpers (sm_80+), inline PTX only (no toolkit header): rounding f32 pairs to
// bf16, ldmatrix from shared memory and mma.sync m16n8k16 with f32 accumulators.
//
// bf16 values are stored as raw 16-bit patterns (`bf16`); device buffers of them are f32 buffers
// holding two values per element (the memory pool only hands out f32 slices).
//
// Fragments of mma.m16n8k16 .bf16 (PTX ISA "Matrix Fragments for mma.m16n8k16 with floating
// point type"), with g = lane / 4 and t = lane % 4; each .b32 register holds two bf16, the lower
// column (or k) index in the lower half:
//   A (16 × 16, row):  a[0] = A[g][2t, 2t+1]      a[1] = A[g+8][2t, 2t+1]
//                      a[2] = A[g][2t+8, 2t+9]    a[3] = A[g+8][2t+8, 2t+9]
//   B (16 × 8, col):   b[0] = B[2t, 2t+1][g]      b[1] = B[2t+8, 2t+9][g]
//   C/D (16 × 8, f32): c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// ldmatrix .x4: lanes 8i..8i+7 give the row addresses (16 contiguous bytes each) of 8 × 8 matrix
// i, and register i of lane l receives row l/4, columns 2(l%4), 2(l%4)+1 of matrix i (with
// .trans: rows 2(l%4), 2(l%4)+1 of column l/4), which is exactly one A or B register above.
#pragma once
#include "common.cuh"

typedef unsigned short bf16;

#define LOG2E_F 1.4426950408889634f
#define LN2_F 0.6931471805599453f

// {lo, hi} rounded to nearest even, lo in the lower half. cvt puts its first source in the
// upper half.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ unsigned smem_u32(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

__device__ __forceinline__ void ldsm_x4_trans(unsigned (&r)[4], const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

// d += A·B for one 16 × 8 tile.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Lane offsets of the ldmatrix row addresses inside a 16 × 16 block stored row-major with the
// contiguous dimension second (rows r, contiguous columns c), for the three uses:
// - A operand, rows = m, columns = k (no .trans): matrices (m0-7,k0-7) (m8-15,k0-7) (m0-7,k8-15)
//   (m8-15,k8-15) -> a[0..3].
__device__ __forceinline__ int ldsm_a_row(int lane) { return lane & 15; }
__device__ __forceinline__ int ldsm_a_col(int lane) { return (lane >> 4) << 3; }
// - B operand stored [n][k] (no .trans) or A operand stored [k][m] (.trans): matrices
//   (r0-7,c0-7) (r0-7,c8-15) (r8-15,c0-7) (r8-15,c8-15). For B they are b[0], b[1] of n-tile
//   r0-7 and b[0], b[1] of n-tile r8-15; for a transposed A they are a[0..3] with c = m.
__device__ __forceinline__ int ldsm_nk_row(int lane) { return (lane & 7) + ((lane >> 4) << 3); }
__device__ __forceinline__ int ldsm_nk_col(int lane) { return ((lane >> 3) & 1) << 3; }
// - B operand stored [k][n] (.trans): matrices (k0-7,n0-7) (k8-15,n0-7) (k0-7,n8-15)
//   (k8-15,n8-15) -> b[0], b[1] of n-tile n0-7, then of n-tile n8-15.
__device__ __forceinline__ int ldsm_kn_row(int lane) { return (lane & 7) + (((lane >> 3) & 1) << 3); }
__device__ __forceinline__ int ldsm_kn_col(int lane) { return (lane >> 4) << 3; }
