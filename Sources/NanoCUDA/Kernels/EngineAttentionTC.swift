// CUDA C++ for fused attention on tensor cores (bf16 operands, fp32 accumulation: the m16n8k16
// mma.sync instruction, two per 16×16×16 tile), used under bf16 mixed precision
// (`AttentionShape.productType == .bfloat16`) for head sizes 64 and 128 without dropout; everything
// else runs the fp32 kernels of EngineAttention.swift, whose semantics these follow: plain or packed
// QKV layout, query i at key position Tk − Tq + i, lse in natural-log units, the same delta kernel.
//
// Q, K, V, dO and the weights P (and dS) are rounded to bf16 for the products; scores, softmax,
// lse and every accumulation are fp32. A block is 4 warps; each warp owns 16 rows of the block's
// 64-row tile and computes their products as 16×16 tiles from operands staged in shared memory
// (bf16, rows padded by 8 elements). In backward, row-wise steps (masking, dS) read the products
// from a per-warp fp32 tile in shared memory; the forward works on the fragments directly:
//
//   forward   FlashAttention-2's loop over key tiles of 64, scores and weights kept in registers
//             (the fragment layout is known): online max and sum per row, the output rescaled.
//   dq        per 64 query rows over key tiles of 32: S = Q·Kᵀ, dP = dO·Vᵀ, dS = P ∘ (dP − δ)·scale,
//             dQ += dS·K.
//   dkdv      per 64 key rows over query tiles of 32: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, dV += Pᵀ·dO,
//             dK += dSᵀ·Q.
// As in the fp32 unit, the gradients take two passes instead of atomics: each element is written
// by one thread, results are deterministic, nothing is zeroed first.
//
// Shared memory stays under the 48 KB a launch gets without opting in: the forward holds a K and
// a V tile (18 KB for D = 64, 35 KB for D = 128), backward at most 41 KB (tiles of 32). Not yet run
// on a GPU: the emulated GPU runs these lane by lane and checks the fragments against the layout.

extension CUDAKernels {
    static let engineAttentionTC = #"""
#include <cuda_bf16.h>

#define ND_TC_LOG2E 1.4426950408889634f
#define ND_TC_LN2 0.6931471805599453f
#define ND_TC_NEG_INF (-__int_as_float(0x7f800000))
typedef __nv_bfloat16 nd_bf16;

// 16×16×16 tiles on the m16n8k16 bf16 MMA (two per tile), fragments in the PTX ISA's layout
// (groupID g = lane / 4, t = lane % 4), loaded and stored by each lane from shared memory:
//   A (16×16)   r0 = A[g][2t, 2t+1], r1 = A[g+8][2t, 2t+1], r2 = A[g][2t+8, 2t+9], r3 = A[g+8][2t+8, 2t+9]
//   B (16×16)   per 8-column half h: r[2h] = B[2t, 2t+1][8h+g], r[2h+1] = B[2t+8, 2t+9][8h+g]
//   C (16×16)   per half h: x[4h..4h+1] = C[g][8h+2t, +1], x[4h+2..4h+3] = C[g+8][8h+2t, +1]
// (two bf16 per 32-bit register, the lower-indexed one in the low half). The emulated GPU runs
// the same lane code and rebuilds the tiles from all lanes with this layout (cuda_emu.h).
struct nd_frag_a { unsigned r[4]; };
struct nd_frag_b { unsigned r[4]; };
struct nd_frag_c { float x[8]; };

__device__ __forceinline__ unsigned nd_tc_pack(nd_bf16 lo, nd_bf16 hi) {
    return (unsigned)__bfloat16_as_ushort(lo) | ((unsigned)__bfloat16_as_ushort(hi) << 16);
}
// A from row-major shared memory: A[i][k] = p[i·ld + k].
__device__ __forceinline__ void nd_load_a(nd_frag_a& f, const nd_bf16* p, int ld) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    f.r[0] = nd_tc_pack(p[g * ld + 2 * t], p[g * ld + 2 * t + 1]);
    f.r[1] = nd_tc_pack(p[(g + 8) * ld + 2 * t], p[(g + 8) * ld + 2 * t + 1]);
    f.r[2] = nd_tc_pack(p[g * ld + 2 * t + 8], p[g * ld + 2 * t + 9]);
    f.r[3] = nd_tc_pack(p[(g + 8) * ld + 2 * t + 8], p[(g + 8) * ld + 2 * t + 9]);
}
// B from row-major shared memory: B[k][n] = p[k·ld + n].
__device__ __forceinline__ void nd_load_b_row(nd_frag_b& f, const nd_bf16* p, int ld) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int n = 8 * h + g;
        f.r[2 * h] = nd_tc_pack(p[(2 * t) * ld + n], p[(2 * t + 1) * ld + n]);
        f.r[2 * h + 1] = nd_tc_pack(p[(2 * t + 8) * ld + n], p[(2 * t + 9) * ld + n]);
    }
}
// B from column-major shared memory: B[k][n] = p[n·ld + k] (a row-major matrix read transposed).
__device__ __forceinline__ void nd_load_b_col(nd_frag_b& f, const nd_bf16* p, int ld) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const nd_bf16* column = p + (8 * h + g) * ld;
        f.r[2 * h] = nd_tc_pack(column[2 * t], column[2 * t + 1]);
        f.r[2 * h + 1] = nd_tc_pack(column[2 * t + 8], column[2 * t + 9]);
    }
}
__device__ __forceinline__ void nd_fill(nd_frag_c& f, float v) {
#pragma unroll
    for (int i = 0; i < 8; i++) f.x[i] = v;
}
// c += a·b (fp32 accumulation), every lane of the warp together.
__device__ __forceinline__ void nd_mma(nd_frag_c& c, const nd_frag_a& a, const nd_frag_b& b) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float* x = c.x + 4 * h;
#ifdef ND_CUDA_EMU
        unsigned bh[2] = {b.r[2 * h], b.r[2 * h + 1]};
        float in[4] = {x[0], x[1], x[2], x[3]};
        nd_emu_mma_m16n8k16_bf16(x, a.r, bh, in);
#elif __CUDA_ARCH__ >= 800
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(x[0]), "+f"(x[1]), "+f"(x[2]), "+f"(x[3])
                     : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[2 * h]), "r"(b.r[2 * h + 1]));
#else
        __trap();   // bf16 mma needs sm_80; the host never launches these kernels on older GPUs
#endif
    }
}
// C into row-major memory: p[i·ld + j] = C[i][j].
__device__ __forceinline__ void nd_store_c(float* p, int ld, const nd_frag_c& f) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int n = 8 * h + 2 * t;
        p[g * ld + n] = f.x[4 * h]; p[g * ld + n + 1] = f.x[4 * h + 1];
        p[(g + 8) * ld + n] = f.x[4 * h + 2]; p[(g + 8) * ld + n + 1] = f.x[4 * h + 3];
    }
}

\#(attentionLayout)

// Rows r0 ..< r0 + n of a head's matrix (fp32 in global memory, `row` elements between rows) as
// bf16 in sm[n][D + 8], zeros for rows at or past `limit` (so padded tiles add nothing).
template <int D>
__device__ __forceinline__ void nd_tc_stage(nd_bf16* sm, const float* g, long long row, long long r0, int n, long long limit) {
    for (int e = threadIdx.x; e < n * D; e += blockDim.x) {
        int r = e / D, c = e % D;
        float x = r0 + r < limit ? g[(r0 + r) * row + c] : 0.0f;
        sm[r * (D + 8) + c] = __float2bfloat16_rn(x);
    }
}

// A warp's accumulator tile (16 × 16, columns c0 ... c0 + 15 of rows r0 ...) into global memory at
// g[row · ld + col], rows at or past `limit` left alone; staged through the warp's fp32 tile.
__device__ __forceinline__ void nd_tc_store(float* g, long long ld, long long r0, int c0, long long limit,
                                           const nd_frag_c& acc, float* tile, int ldTile) {
    int lane = threadIdx.x & 31;
    nd_store_c(tile, ldTile, acc);
    __syncwarp();
    for (int e = lane; e < 256; e += 32) {
        int r = e / 16, c = e % 16;
        if (r0 + r < limit) g[(r0 + r) * ld + c0 + c] = tile[r * ldTile + c];
    }
    __syncwarp();
}

// Forward, FlashAttention-2's loop: 64 query rows per block (warp w: rows 16w ...), key tiles of
// 64. A warp's scores stay in its accumulator fragments: lane (g, t) holds, of each 16×16 score
// tile, rows g and g + 8 at columns 2t, 2t+1 and 8+2t, 9+2t, so a row's max and sum are the
// lane's own values reduced over the 4 lanes of its quad (shuffles by 1 and 2). The running max
// rescales the output fragments row by row, and the weights P go straight from the score
// fragments into the A fragments of P·V (the accumulator layout of a 16×16 tile is the A layout).
template <int D>
__device__ __forceinline__ void nd_tc_forward(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                              float* __restrict__ out, float* __restrict__ lse, const AttnParams& p) {
    const int BC = 64, LD = D + 8;
    __shared__ __align__(128) nd_bf16 kv[2 * BC * LD];   // K tile, V tile (the Q tile first)
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const long long tiles = (p.tq + 63) / 64, h = blockIdx.x / tiles, q0 = (blockIdx.x % tiles) * 64;
    const AttnHead a = nd_attn_head(p, h);
    const long long shift = p.tk - p.tq;

    nd_frag_a qa[D / 16];
    nd_tc_stage<D>(kv, q + a.q, a.row, q0, 64, p.tq);
    __syncthreads();
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_load_a(qa[c], kv + warp * 16 * LD + c * 16, LD);
    __syncthreads();

    // This lane's two rows (g and g + 8 of the warp's 16) and their key positions.
    const long long row0 = q0 + warp * 16 + g;
    const long long position[2] = {shift + row0, shift + row0 + 8};
    float m[2] = {ND_TC_NEG_INF, ND_TC_NEG_INF}, l[2] = {0.0f, 0.0f};   // running max and sum, base 2
    nd_frag_c o[D / 16];
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_fill(o[c], 0.0f);
    const long long keyEnd = p.causal ? nd_attn_min(p.tk, shift + q0 + 64) : p.tk;

    for (long long k0 = 0; k0 < keyEnd; k0 += BC) {
        nd_tc_stage<D>(kv, k + a.k, a.row, k0, BC, p.tk);
        nd_tc_stage<D>(kv + BC * LD, v + a.v, a.row, k0, BC, p.tk);
        __syncthreads();
        nd_frag_c s[BC / 16];
#pragma unroll
        for (int n = 0; n < BC / 16; n++) {
            nd_fill(s[n], 0.0f);
#pragma unroll
            for (int c = 0; c < D / 16; c++) {
                nd_frag_b kb;
                nd_load_b_col(kb, kv + n * 16 * LD + c * 16, LD);
                nd_mma(s[n], qa[c], kb);
            }
        }
        // Scores in base 2, masked; element e of half hh of tile n: row g + 8·(e / 2), key 16n + 8hh + 2t + e % 2.
        float tileMax[2] = {ND_TC_NEG_INF, ND_TC_NEG_INF};
#pragma unroll
        for (int n = 0; n < BC / 16; n++)
#pragma unroll
            for (int i = 0; i < 8; i++) {
                int r = (i >> 1) & 1;
                long long key = k0 + 16 * n + 8 * (i >> 2) + 2 * t + (i & 1);
                bool visible = key < p.tk && (!p.causal || key <= position[r]);
                float x = visible ? s[n].x[i] * p.scaleLog2 : ND_TC_NEG_INF;
                s[n].x[i] = x;
                tileMax[r] = fmaxf(tileMax[r], x);
            }
        float alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            tileMax[r] = fmaxf(tileMax[r], __shfl_xor_sync(0xffffffffu, tileMax[r], 1));
            tileMax[r] = fmaxf(tileMax[r], __shfl_xor_sync(0xffffffffu, tileMax[r], 2));
            float next = fmaxf(m[r], tileMax[r]);
            alpha[r] = next == ND_TC_NEG_INF ? 1.0f : exp2f(m[r] - next);   // exp2f(−inf) = 0 on the first visible tile
            m[r] = next;
        }
        nd_frag_a pa[BC / 16];
#pragma unroll
        for (int n = 0; n < BC / 16; n++) {
#pragma unroll
            for (int i = 0; i < 8; i++) {
                int r = (i >> 1) & 1;
                float w = m[r] == ND_TC_NEG_INF ? 0.0f : exp2f(s[n].x[i] - m[r]);
                s[n].x[i] = w;
                sum[r] += w;
            }
            // The accumulator layout of tile n is the A layout of P's 16 columns 16n ...
            pa[n].r[0] = nd_tc_pack(__float2bfloat16_rn(s[n].x[0]), __float2bfloat16_rn(s[n].x[1]));
            pa[n].r[1] = nd_tc_pack(__float2bfloat16_rn(s[n].x[2]), __float2bfloat16_rn(s[n].x[3]));
            pa[n].r[2] = nd_tc_pack(__float2bfloat16_rn(s[n].x[4]), __float2bfloat16_rn(s[n].x[5]));
            pa[n].r[3] = nd_tc_pack(__float2bfloat16_rn(s[n].x[6]), __float2bfloat16_rn(s[n].x[7]));
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
            l[r] = l[r] * alpha[r] + sum[r];
        }
#pragma unroll
        for (int c = 0; c < D / 16; c++) {
#pragma unroll
            for (int i = 0; i < 8; i++) o[c].x[i] *= alpha[(i >> 1) & 1];
#pragma unroll
            for (int n = 0; n < BC / 16; n++) {   // O += P·V: V read row-major from the V tile
                nd_frag_b vb;
                nd_load_b_row(vb, kv + BC * LD + n * 16 * LD + c * 16, LD);
                nd_mma(o[c], pa[n], vb);
            }
        }
        __syncthreads();   // the next tile overwrites K and V
    }
    // out = O / l per row; lse = (m + log2 l)·ln 2. Each lane writes its own elements.
#pragma unroll
    for (int r = 0; r < 2; r++) {
        long long i = row0 + 8 * r;
        if (t == 0 && i < p.tq) lse[h * p.tq + i] = (m[r] + log2f(l[r])) * ND_TC_LN2;
    }
#pragma unroll
    for (int c = 0; c < D / 16; c++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int r = (i >> 1) & 1;
            long long row = row0 + 8 * r;
            if (row < p.tq) out[a.out + row * a.outRow + c * 16 + 8 * (i >> 2) + 2 * t + (i & 1)] = o[c].x[i] / l[r];
        }
}

// dQ: 64 query rows per block (warp w: rows 16w ...), key tiles of 32.
template <int D>
__device__ __forceinline__ void nd_tc_dq(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                         const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                         float* __restrict__ dq, const AttnParams& p) {
    const int BC = 32, LD = D + 8, LS = BC + 4, LP = BC + 8;
    __shared__ __align__(128) nd_bf16 kv[2 * BC * LD];        // the Q tile, then the dO tile (64 rows); then K and V tiles
    __shared__ __align__(128) float scores[4][16 * LS];       // P
    __shared__ __align__(128) float grads[4][16 * LS];        // dP
    __shared__ __align__(128) nd_bf16 weights[4][16 * LP];    // dS
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long tiles = (p.tq + 63) / 64, h = blockIdx.x / tiles, q0 = (blockIdx.x % tiles) * 64;
    const AttnHead a = nd_attn_head(p, h);
    const long long shift = p.tk - p.tq;
    float* s = scores[warp];
    float* dp = grads[warp];
    nd_bf16* w = weights[warp];

    nd_frag_a qa[D / 16], da[D / 16];
    nd_tc_stage<D>(kv, q + a.q, a.row, q0, 64, p.tq);
    __syncthreads();
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_load_a(qa[c], kv + warp * 16 * LD + c * 16, LD);
    __syncthreads();
    nd_tc_stage<D>(kv, dout + a.out, a.outRow, q0, 64, p.tq);
    __syncthreads();
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_load_a(da[c], kv + warp * 16 * LD + c * 16, LD);
    __syncthreads();

    const int r = lane >> 1, half = lane & 1;
    const long long i = q0 + warp * 16 + r, position = shift + i;
    const float top = i < p.tq ? lse[h * p.tq + i] * ND_TC_LOG2E : 0.0f;
    const float di = i < p.tq ? delta[h * p.tq + i] : 0.0f;
    const long long keyEnd = p.causal ? nd_attn_min(p.tk, shift + q0 + 64) : p.tk;
    nd_frag_c acc, g[D / 16];
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_fill(g[c], 0.0f);

    for (long long k0 = 0; k0 < keyEnd; k0 += BC) {
        nd_tc_stage<D>(kv, k + a.k, a.row, k0, BC, p.tk);
        nd_tc_stage<D>(kv + BC * LD, v + a.v, a.row, k0, BC, p.tk);
        __syncthreads();
        for (int n = 0; n < BC / 16; n++) {
            nd_fill(acc, 0.0f);
#pragma unroll
            for (int c = 0; c < D / 16; c++) {
                nd_frag_b kb;
                nd_load_b_col(kb, kv + n * 16 * LD + c * 16, LD);
                nd_mma(acc, qa[c], kb);
            }
            nd_store_c(s + n * 16, LS, acc);
            nd_fill(acc, 0.0f);
#pragma unroll
            for (int c = 0; c < D / 16; c++) {
                nd_frag_b vb;
                nd_load_b_col(vb, kv + BC * LD + n * 16 * LD + c * 16, LD);
                nd_mma(acc, da[c], vb);
            }
            nd_store_c(dp + n * 16, LS, acc);
        }
        __syncwarp();
        for (int j = half * (BC / 2); j < (half + 1) * (BC / 2); j++) {
            long long key = k0 + j;
            bool visible = i < p.tq && key < p.tk && (!p.causal || key <= position);
            float pij = visible ? exp2f(s[r * LS + j] * p.scaleLog2 - top) : 0.0f;
            w[r * LP + j] = __float2bfloat16_rn(pij * (dp[r * LS + j] - di) * p.scale);
        }
        __syncwarp();
        // dQ += dS·K: K read row-major from the K tile.
        for (int kk = 0; kk < BC / 16; kk++) {
            nd_frag_a sa;
            nd_load_a(sa, w + kk * 16, LP);
#pragma unroll
            for (int c = 0; c < D / 16; c++) {
                nd_frag_b kb;
                nd_load_b_row(kb, kv + kk * 16 * LD + c * 16, LD);
                nd_mma(g[c], sa, kb);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int c = 0; c < D / 16; c++)
        nd_tc_store(dq + a.q, a.row, q0 + warp * 16, c * 16, p.tq, g[c], s, LS);
}

// dK, dV: 64 key rows per block (warp w: keys 16w ...), query tiles of 32.
template <int D>
__device__ __forceinline__ void nd_tc_dkdv(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                           const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                           float* __restrict__ dk, float* __restrict__ dv, const AttnParams& p) {
    const int BR = 32, LD = D + 8, LS = BR + 4, LP = BR + 8;
    __shared__ __align__(128) nd_bf16 qd[2 * BR * LD];        // K then V tiles first (64 ≤ 2·BR rows); then Q and dO tiles
    __shared__ __align__(128) float scores[4][16 * LS];       // Pᵀ
    __shared__ __align__(128) float grads[4][16 * LS];        // dPᵀ
    __shared__ __align__(128) nd_bf16 weights[4][16 * LP];    // Pᵀ, then dSᵀ, in bf16
    __shared__ float rowTop[BR], rowDelta[BR];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long tiles = (p.tk + 63) / 64, h = blockIdx.x / tiles, k0 = (blockIdx.x % tiles) * 64;
    const AttnHead a = nd_attn_head(p, h);
    const long long shift = p.tk - p.tq;
    float* s = scores[warp];
    float* dp = grads[warp];
    nd_bf16* w = weights[warp];

    nd_frag_a ka[D / 16], va[D / 16];
    nd_tc_stage<D>(qd, k + a.k, a.row, k0, 64, p.tk);
    __syncthreads();
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_load_a(ka[c], qd + warp * 16 * LD + c * 16, LD);
    __syncthreads();
    nd_tc_stage<D>(qd, v + a.v, a.row, k0, 64, p.tk);
    __syncthreads();
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_load_a(va[c], qd + warp * 16 * LD + c * 16, LD);
    __syncthreads();

    const int r = lane >> 1, half = lane & 1;
    const long long key = k0 + warp * 16 + r;
    // Queries that see any of this block's keys: position shift + i ≥ k0 when causal.
    const long long firstQuery = p.causal ? nd_attn_max(0, k0 - shift) / BR * BR : 0;
    nd_frag_c acc, gk[D / 16], gv[D / 16];
#pragma unroll
    for (int c = 0; c < D / 16; c++) { nd_fill(gk[c], 0.0f); nd_fill(gv[c], 0.0f); }

    for (long long i0 = firstQuery; i0 < p.tq; i0 += BR) {
        nd_tc_stage<D>(qd, q + a.q, a.row, i0, BR, p.tq);
        nd_tc_stage<D>(qd + BR * LD, dout + a.out, a.outRow, i0, BR, p.tq);
        if (threadIdx.x < BR) {
            long long i = i0 + threadIdx.x;
            rowTop[threadIdx.x] = i < p.tq ? lse[h * p.tq + i] * ND_TC_LOG2E : 0.0f;
            rowDelta[threadIdx.x] = i < p.tq ? delta[h * p.tq + i] : 0.0f;
        }
        __syncthreads();
        // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for the warp's 16 keys: Qᵀ and dOᵀ read column-major.
        for (int n = 0; n < BR / 16; n++) {
            nd_fill(acc, 0.0f);
#pragma unroll
            for (int c = 0; c < D / 16; c++) {
                nd_frag_b qb;
                nd_load_b_col(qb, qd + n * 16 * LD + c * 16, LD);
                nd_mma(acc, ka[c], qb);
            }
            nd_store_c(s + n * 16, LS, acc);
            nd_fill(acc, 0.0f);
#pragma unroll
            for (int c = 0; c < D / 16; c++) {
                nd_frag_b db;
                nd_load_b_col(db, qd + BR * LD + n * 16 * LD + c * 16, LD);
                nd_mma(acc, va[c], db);
            }
            nd_store_c(dp + n * 16, LS, acc);
        }
        __syncwarp();
        for (int j = half * (BR / 2); j < (half + 1) * (BR / 2); j++) {
            long long i = i0 + j;
            bool visible = i < p.tq && key < p.tk && (!p.causal || key <= shift + i);
            float pt = visible ? exp2f(s[r * LS + j] * p.scaleLog2 - rowTop[j]) : 0.0f;
            s[r * LS + j] = pt;
            w[r * LP + j] = __float2bfloat16_rn(pt);
        }
        __syncwarp();
        // dV += Pᵀ·dO: dO read row-major.
        for (int kk = 0; kk < BR / 16; kk++) {
            nd_frag_a pa;
            nd_load_a(pa, w + kk * 16, LP);
#pragma unroll
            for (int c = 0; c < D / 16; c++) {
                nd_frag_b db;
                nd_load_b_row(db, qd + BR * LD + kk * 16 * LD + c * 16, LD);
                nd_mma(gv[c], pa, db);
            }
        }
        __syncwarp();   // every lane has read Pᵀ before it becomes dSᵀ
        for (int j = half * (BR / 2); j < (half + 1) * (BR / 2); j++)
            w[r * LP + j] = __float2bfloat16_rn(s[r * LS + j] * (dp[r * LS + j] - rowDelta[j]) * p.scale);
        __syncwarp();
        // dK += dSᵀ·Q: Q read row-major.
        for (int kk = 0; kk < BR / 16; kk++) {
            nd_frag_a sa;
            nd_load_a(sa, w + kk * 16, LP);
#pragma unroll
            for (int c = 0; c < D / 16; c++) {
                nd_frag_b qb;
                nd_load_b_row(qb, qd + kk * 16 * LD + c * 16, LD);
                nd_mma(gk[c], sa, qb);
            }
        }
        __syncthreads();   // the next query tile overwrites Q, dO and the row values
    }
#pragma unroll
    for (int c = 0; c < D / 16; c++) {
        nd_tc_store(dk + a.k, a.row, k0 + warp * 16, c * 16, p.tk, gk[c], s, LS);
        nd_tc_store(dv + a.v, a.row, k0 + warp * 16, c * 16, p.tk, gv[c], s, LS);
    }
}

extern "C" __global__ void nd_attn_tc_forward_d64(const float* q, const float* k, const float* v, float* out, float* lse, AttnParams p) {
    nd_tc_forward<64>(q, k, v, out, lse, p);
}
extern "C" __global__ void nd_attn_tc_forward_d128(const float* q, const float* k, const float* v, float* out, float* lse, AttnParams p) {
    nd_tc_forward<128>(q, k, v, out, lse, p);
}
extern "C" __global__ void nd_attn_tc_dq_d64(const float* q, const float* k, const float* v, const float* dout,
                                                                   const float* lse, const float* delta, float* dq, AttnParams p) {
    nd_tc_dq<64>(q, k, v, dout, lse, delta, dq, p);
}
extern "C" __global__ void nd_attn_tc_dq_d128(const float* q, const float* k, const float* v, const float* dout,
                                                                    const float* lse, const float* delta, float* dq, AttnParams p) {
    nd_tc_dq<128>(q, k, v, dout, lse, delta, dq, p);
}
extern "C" __global__ void nd_attn_tc_dkdv_d64(const float* q, const float* k, const float* v, const float* dout,
                                                                     const float* lse, const float* delta, float* dk, float* dv, AttnParams p) {
    nd_tc_dkdv<64>(q, k, v, dout, lse, delta, dk, dv, p);
}
extern "C" __global__ void nd_attn_tc_dkdv_d128(const float* q, const float* k, const float* v, const float* dout,
                                                                      const float* lse, const float* delta, float* dk, float* dv, AttnParams p) {
    nd_tc_dkdv<128>(q, k, v, dout, lse, delta, dk, dv, p);
}
"""#
}
