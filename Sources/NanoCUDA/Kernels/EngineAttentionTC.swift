// CUDA C++ for fused attention on tensor cores (bf16 operands, fp32 accumulation: the m16n8k16
// mma.sync instruction, two per 16×16×16 tile), used under bf16 mixed precision
// (`AttentionShape.productType == .bfloat16`) for head sizes 64 and 128 without dropout; everything
// else runs the fp32 kernels of EngineAttention.swift, whose semantics these follow: plain or packed
// QKV layout, query i at key position Tk − Tq + i, lse in natural-log units, the same delta kernel.
//
// Q, K, V, dO and the weights P (and dS) are rounded to bf16 for the products; scores, softmax,
// lse and every accumulation are fp32. A block is 4 warps; each warp owns 16 rows of the block's
// 64-row tile and computes their products as 16×16 tiles (two m16n8k16 MMAs each) from operands
// staged in shared memory (bf16, rows padded by 8 elements). Scores, weights and their gradients
// never leave registers: lane (g, t) of a warp holds rows g and g + 8 of each 16×16 accumulator
// tile at columns 2t, 2t+1, 8+2t, 9+2t, so row-wise work (masks, softmax) reads the lane's own
// values and reduces over the 4 lanes of its quad, and an accumulator tile is repacked in place
// as the A operand of the next product (its layout is the A layout).
//
//   forward   FlashAttention-2's loop over key tiles of 64: online max and sum per row, the
//             output fragments rescaled, P fed straight into P·V.
//   dq        per 64 query rows over key tiles (64 for D = 64, 32 for D = 128): S = Q·Kᵀ,
//             dP = dO·Vᵀ, dS = P ∘ (dP − δ)·scale, dQ += dS·K.
//   dkdv      per 64 key rows over query tiles (32, or 16 for D = 128): Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ,
//             dV += Pᵀ·dO, dK += dSᵀ·Q.
// As in the fp32 unit, the gradients take two passes instead of atomics: each element is written
// by one thread, results are deterministic, nothing is zeroed first.
//
// Shared memory holds only operand tiles: at most 35 KB (the forward's K and V tiles for D = 128),
// under the 48 KB a launch gets without opting in. Not yet run on a GPU: the emulated GPU runs
// these lane by lane and checks every fragment against the PTX layout (cuda_emu.h).

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

// This warp's 16 rows of the 64 rows r0 ... of a head's matrix as A fragments, staged in bf16
// through `buffer` (64 rows of D + 8); every thread of the block takes part.
template <int D>
__device__ __forceinline__ void nd_tc_rows_as_a(nd_frag_a* f, nd_bf16* buffer, const float* g, long long row, long long r0, long long limit) {
    nd_tc_stage<D>(buffer, g, row, r0, 64, limit);
    __syncthreads();
    const int warp = threadIdx.x >> 5;
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_load_a(f[c], buffer + warp * 16 * (D + 8) + c * 16, D + 8);
    __syncthreads();
}

// acc = A·Bᵀ for one 16×16 tile: this warp's 16 rows (A fragments over D) times 16 rows of a
// staged bf16 matrix (row stride ld), read column-major as B: scores Q·Kᵀ, and dO·Vᵀ, K·Qᵀ, V·dOᵀ.
template <int D>
__device__ __forceinline__ void nd_tc_times_rows(nd_frag_c& acc, const nd_frag_a* a, const nd_bf16* rows, int ld) {
    nd_fill(acc, 0.0f);
#pragma unroll
    for (int c = 0; c < D / 16; c++) {
        nd_frag_b b;
        nd_load_b_col(b, rows + c * 16, ld);
        nd_mma(acc, a[c], b);
    }
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
    nd_tc_rows_as_a<D>(qa, kv, q + a.q, a.row, q0, p.tq);

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
        for (int n = 0; n < BC / 16; n++) nd_tc_times_rows<D>(s[n], qa, kv + n * 16 * LD, LD);
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

// The fragment element i of a 16×16 accumulator tile sits at row g + 8·rowHalf(i), column
// colInTile(i, t) of the tile; the A fragment of the same 16×16 values packs them pairwise.
__device__ __forceinline__ int nd_tc_row_half(int i) { return (i >> 1) & 1; }
__device__ __forceinline__ int nd_tc_col(int i, int t) { return 8 * (i >> 2) + 2 * t + (i & 1); }
__device__ __forceinline__ void nd_tc_to_a(nd_frag_a& f, const float x[8]) {
    f.r[0] = nd_tc_pack(__float2bfloat16_rn(x[0]), __float2bfloat16_rn(x[1]));
    f.r[1] = nd_tc_pack(__float2bfloat16_rn(x[2]), __float2bfloat16_rn(x[3]));
    f.r[2] = nd_tc_pack(__float2bfloat16_rn(x[4]), __float2bfloat16_rn(x[5]));
    f.r[3] = nd_tc_pack(__float2bfloat16_rn(x[6]), __float2bfloat16_rn(x[7]));
}

// dQ: 64 query rows per block (warp w: rows 16w ...), key tiles of BC; S, dP and dS in registers.
template <int D, int BC>
__device__ __forceinline__ void nd_tc_dq(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                         const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                         float* __restrict__ dq, const AttnParams& p) {
    const int LD = D + 8;
    __shared__ __align__(128) nd_bf16 kv[2 * (BC > 32 ? BC : 32) * LD];   // the Q, then dO tile (64 rows); then K and V tiles
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const long long tiles = (p.tq + 63) / 64, h = blockIdx.x / tiles, q0 = (blockIdx.x % tiles) * 64;
    const AttnHead a = nd_attn_head(p, h);
    const long long shift = p.tk - p.tq;

    nd_frag_a qa[D / 16], da[D / 16];
    nd_tc_rows_as_a<D>(qa, kv, q + a.q, a.row, q0, p.tq);
    nd_tc_rows_as_a<D>(da, kv, dout + a.out, a.outRow, q0, p.tq);

    const long long row0 = q0 + warp * 16 + g;
    float top[2], di[2];
    long long position[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        long long i = row0 + 8 * r;
        top[r] = i < p.tq ? lse[h * p.tq + i] * ND_TC_LOG2E : 0.0f;
        di[r] = i < p.tq ? delta[h * p.tq + i] : 0.0f;
        position[r] = shift + i;
    }
    const long long keyEnd = p.causal ? nd_attn_min(p.tk, shift + q0 + 64) : p.tk;
    nd_frag_c gq[D / 16];
#pragma unroll
    for (int c = 0; c < D / 16; c++) nd_fill(gq[c], 0.0f);

    for (long long k0 = 0; k0 < keyEnd; k0 += BC) {
        nd_tc_stage<D>(kv, k + a.k, a.row, k0, BC, p.tk);
        nd_tc_stage<D>(kv + BC * LD, v + a.v, a.row, k0, BC, p.tk);
        __syncthreads();
        nd_frag_a dsa[BC / 16];
#pragma unroll
        for (int n = 0; n < BC / 16; n++) {
            nd_frag_c sc, dp;   // S = Q·Kᵀ and dP = dO·Vᵀ for keys 16n ...
            nd_tc_times_rows<D>(sc, qa, kv + n * 16 * LD, LD);
            nd_tc_times_rows<D>(dp, da, kv + BC * LD + n * 16 * LD, LD);
            float ds[8];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                int r = nd_tc_row_half(i);
                long long key = k0 + 16 * n + nd_tc_col(i, t);
                bool visible = row0 + 8 * r < p.tq && key < p.tk && (!p.causal || key <= position[r]);
                float pij = visible ? exp2f(sc.x[i] * p.scaleLog2 - top[r]) : 0.0f;
                ds[i] = pij * (dp.x[i] - di[r]) * p.scale;
            }
            nd_tc_to_a(dsa[n], ds);
        }
        // dQ += dS·K: K read row-major from the K tile.
#pragma unroll
        for (int c = 0; c < D / 16; c++)
#pragma unroll
            for (int n = 0; n < BC / 16; n++) {
                nd_frag_b kb;
                nd_load_b_row(kb, kv + n * 16 * LD + c * 16, LD);
                nd_mma(gq[c], dsa[n], kb);
            }
        __syncthreads();
    }
#pragma unroll
    for (int c = 0; c < D / 16; c++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            long long row = row0 + 8 * nd_tc_row_half(i);
            if (row < p.tq) dq[a.q + row * a.row + c * 16 + nd_tc_col(i, t)] = gq[c].x[i];
        }
}

// dK, dV: 64 key rows per block (warp w: keys 16w ...), query tiles of BR; Sᵀ, dPᵀ, Pᵀ and dSᵀ
// in registers (rows are keys, columns queries).
template <int D, int BR>
__device__ __forceinline__ void nd_tc_dkdv(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                           const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                           float* __restrict__ dk, float* __restrict__ dv, const AttnParams& p) {
    const int LD = D + 8;
    __shared__ __align__(128) nd_bf16 qd[(2 * BR > 64 ? 2 * BR : 64) * LD];   // the K, then V tile (64 rows); then Q and dO tiles
    __shared__ float rowTop[BR], rowDelta[BR];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const long long tiles = (p.tk + 63) / 64, h = blockIdx.x / tiles, k0 = (blockIdx.x % tiles) * 64;
    const AttnHead a = nd_attn_head(p, h);
    const long long shift = p.tk - p.tq;

    nd_frag_a ka[D / 16], va[D / 16];
    nd_tc_rows_as_a<D>(ka, qd, k + a.k, a.row, k0, p.tk);
    nd_tc_rows_as_a<D>(va, qd, v + a.v, a.row, k0, p.tk);

    const long long key0 = k0 + warp * 16 + g;   // this lane's keys: key0 and key0 + 8
    // Queries that see any of this block's keys: position shift + i ≥ k0 when causal.
    const long long firstQuery = p.causal ? nd_attn_max(0, k0 - shift) / BR * BR : 0;
    nd_frag_c gk[D / 16], gv[D / 16];
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
        nd_frag_a pta[BR / 16], dsa[BR / 16];
#pragma unroll
        for (int n = 0; n < BR / 16; n++) {
            nd_frag_c st, dpt;   // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for queries 16n ...
            nd_tc_times_rows<D>(st, ka, qd + n * 16 * LD, LD);
            nd_tc_times_rows<D>(dpt, va, qd + BR * LD + n * 16 * LD, LD);
            float pt[8], ds[8];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                int j = 16 * n + nd_tc_col(i, t);
                long long query = i0 + j, key = key0 + 8 * nd_tc_row_half(i);
                bool visible = query < p.tq && key < p.tk && (!p.causal || key <= shift + query);
                pt[i] = visible ? exp2f(st.x[i] * p.scaleLog2 - rowTop[j]) : 0.0f;
                ds[i] = pt[i] * (dpt.x[i] - rowDelta[j]) * p.scale;
            }
            nd_tc_to_a(pta[n], pt);
            nd_tc_to_a(dsa[n], ds);
        }
        // dV += Pᵀ·dO and dK += dSᵀ·Q: dO and Q read row-major.
#pragma unroll
        for (int c = 0; c < D / 16; c++)
#pragma unroll
            for (int n = 0; n < BR / 16; n++) {
                nd_frag_b db, qb;
                nd_load_b_row(db, qd + BR * LD + n * 16 * LD + c * 16, LD);
                nd_mma(gv[c], pta[n], db);
                nd_load_b_row(qb, qd + n * 16 * LD + c * 16, LD);
                nd_mma(gk[c], dsa[n], qb);
            }
        __syncthreads();   // the next query tile overwrites Q, dO and the row values
    }
#pragma unroll
    for (int c = 0; c < D / 16; c++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            long long key = key0 + 8 * nd_tc_row_half(i);
            if (key < p.tk) {
                int col = c * 16 + nd_tc_col(i, t);
                dk[a.k + key * a.row + col] = gk[c].x[i];
                dv[a.v + key * a.row + col] = gv[c].x[i];
            }
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
    nd_tc_dq<64, 64>(q, k, v, dout, lse, delta, dq, p);
}
extern "C" __global__ void nd_attn_tc_dq_d128(const float* q, const float* k, const float* v, const float* dout,
                                                                    const float* lse, const float* delta, float* dq, AttnParams p) {
    nd_tc_dq<128, 32>(q, k, v, dout, lse, delta, dq, p);
}
extern "C" __global__ void nd_attn_tc_dkdv_d64(const float* q, const float* k, const float* v, const float* dout,
                                                                     const float* lse, const float* delta, float* dk, float* dv, AttnParams p) {
    nd_tc_dkdv<64, 32>(q, k, v, dout, lse, delta, dk, dv, p);
}
extern "C" __global__ void nd_attn_tc_dkdv_d128(const float* q, const float* k, const float* v, const float* dout,
                                                                      const float* lse, const float* delta, float* dk, float* dv, AttnParams p) {
    nd_tc_dkdv<128, 16>(q, k, v, dout, lse, delta, dk, dv, p);
}
"""#
}
