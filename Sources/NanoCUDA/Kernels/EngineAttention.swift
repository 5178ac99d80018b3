// CUDA C++ for CUDABackend's fused attention: FlashAttention-2's loop order (Dao 2023) on fp32
// CUDA cores. The T×T weights never reach memory: forward keeps a running max and sum per query row
// (online softmax) and saves lse; backward recomputes p_ij = exp(s_ij − lse_i) tile by tile.
// Semantics are NanoCPU/Kernels/Attention.swift's: plain (B, H, T, D) or packed QKV layout
// (AttentionShape.layout), query i at absolute position Tk − Tq + i (causal: it sees keys
// 0 ... Tk − Tq + i), and the dropout keep mask from Philox element (head·Tq + i)·Tk + j of the
// stream (seed, offset), so GPU and CPU drop the same weights.
//
// Tiling: a block of 256 threads (16 × 16: ty = tid / 16, tx = tid % 16) owns a 64 × 64 tile of
// scores, 4 × 4 per thread (rows ty·4 + a, columns tx·4 + b). Products over the head dimension
// stage 32 columns of both operands at a time (transposed, so each step reads two float4s);
// products over keys or queries stage a few rows of the right operand, whose D columns a thread
// covers in NG groups of 4 (tx·4 + 64·g + e, NG = ⌈D / 64⌉). Shared memory stays at 34 KB for any
// D ≤ 256, under the 48 KB a launch gets without opting in.
//
//   forward   q (B,H,Tq,D), k, v (B,H,Tk,D) -> out (B,H,Tq,D), lse (B,H,Tq)   grid: query tiles × B·H
//   delta     out, dout -> delta (B,H,Tq) = rowsum(dout ∘ out)                grid: rows / 8 (a warp a row)
//   dq        q, k, v, dout, lse, delta -> dq (overwritten)                    grid: query tiles × B·H
//   dkdv      q, k, v, dout, lse, delta -> dk, dv (overwritten)                grid: key tiles × B·H
// Two passes for the gradients (dq over query tiles, dk/dv over key tiles) instead of atomics:
// every element is written by one thread, so results are deterministic and nothing is zeroed first.

extension CUDAKernels {
    /// The attention kernels' parameters and head layout, shared by the fp32 and tensor-core units.
    static let attentionLayout = #"""
// The host's AttentionParameters (CUDABackend+Attention.swift), field for field: 80 bytes.
struct AttnParams {
    long long batchHeads, heads, tq, tk, d;
    unsigned long long seed, offset;
    float scale;        // softmax(q·k·scale)
    float scaleLog2;    // scale·log2(e): scores in base 2 for exp2f
    float dropout;      // probability of dropping a weight
    float keepScale;    // 1 / (1 − dropout), computed on the host as the CPU does
    int causal, packed;
};

__device__ __forceinline__ long long nd_attn_min(long long a, long long b) { return a < b ? a : b; }
__device__ __forceinline__ long long nd_attn_max(long long a, long long b) { return a > b ? a : b; }

// Element offsets of head h (= batch index · heads + head) and row strides: AttentionShape.layout(head:).
struct AttnHead { long long q, k, v, out, row, outRow; };
__device__ __forceinline__ AttnHead nd_attn_head(const AttnParams& p, long long h) {
    AttnHead a;
    if (p.packed) {
        long long c = p.heads * p.d, b = h / p.heads, within = (h % p.heads) * p.d;
        a.q = b * p.tq * 3 * c + within; a.k = a.q + c; a.v = a.q + 2 * c;
        a.out = b * p.tq * c + within; a.row = 3 * c; a.outRow = c;
    } else {
        a.q = h * p.tq * p.d; a.k = h * p.tk * p.d; a.v = a.k; a.out = a.q; a.row = p.d; a.outRow = p.d;
    }
    return a;
}
"""#

    static let engineAttention = #"""
#define ND_ATTN_TILE 64          // query rows / key rows of a tile
#define ND_ATTN_LD 68            // row stride of a staged transposed tile: 64 + 4 keeps float4 alignment, no bank conflicts
#define ND_ATTN_DC 32            // head-dim columns per step of a product over D
#define ND_ATTN_BUF (2 * ND_ATTN_DC * ND_ATTN_LD)
#define ND_ATTN_LOG2E 1.4426950408889634f
#define ND_ATTN_LN2 0.6931471805599453f
#define ND_ATTN_NEG_INF (-__int_as_float(0x7f800000))

\#(attentionLayout)

\#(philox)

// Dropout multipliers of keys j ... j+3 for query row i of head h: the CPU's keepScale, whose
// uniform draw is 1 − ((bits >> 8) + 1)·2⁻²⁴ (exact in fp32, so the comparison agrees bit for bit).
__device__ __forceinline__ void nd_attn_keep(const AttnParams& p, long long h, long long i, long long j, float z[4]) {
    unsigned long long index = p.offset + (unsigned long long)((h * p.tq + i) * p.tk + j);
    int lane = (int)(index & 3);
    uint4 b0 = nd_philox(index >> 2, p.seed), b1 = b0;
    if (lane != 0) b1 = nd_philox((index >> 2) + 1, p.seed);   // the four words straddle two blocks
#pragma unroll
    for (int t = 0; t < 4; t++) {
        int w = lane + t;
        unsigned int bits = w < 4 ? nd_philox_word(b0, w) : nd_philox_word(b1, w - 4);
        float u = 1.0f - (float)((bits >> 8) + 1) * (1.0f / 16777216.0f);
        z[t] = u < p.dropout ? 0.0f : p.keepScale;
    }
}

// Reductions over the 16 threads (one tx each) that share a row of the tile: half a warp.
__device__ __forceinline__ float nd_attn_row_max(float v) {
    for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float nd_attn_row_sum(float v) {
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// dst[c][r] = src[r·ld + c] for r < 64, c < 32 (a 64 × 32 block, transposed), 0 where r ≥ rows or
// c ≥ cols. A warp reads 8 columns of 4 rows (32-byte sectors, whole) and writes 32 distinct banks.
__device__ __forceinline__ void nd_attn_stage_t(float* dst, const float* src, long long ld, int rows, int cols) {
#pragma unroll 2   // fully unrolled, the loads in flight cost ~50 registers
    for (int k = 0; k < 8; k++) {
        int e = threadIdx.x + 256 * k, g = e >> 5, lane = e & 31;
        int r = (g >> 2) * 4 + (lane >> 3), c = (g & 3) * 8 + (lane & 7);
        dst[c * ND_ATTN_LD + r] = (r < rows && c < cols) ? src[r * ld + c] : 0.0f;
    }
}

// acc[a][b] = Σ_d A[ty·4 + a][d] · B[tx·4 + b][d] over d < D: rows of two row-major operands (row
// strides lda, ldb), of which rowsA and rowsB are valid (the rest read as 0).
__device__ void nd_attn_dots(float acc[4][4], const float* A, long long lda, int rowsA,
                             const float* B, long long ldb, int rowsB, int D, float* buf) {
    float* sa = buf;
    float* sb = buf + ND_ATTN_DC * ND_ATTN_LD;
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++) acc[a][b] = 0.0f;
    for (int d0 = 0; d0 < D; d0 += ND_ATTN_DC) {
        __syncthreads();   // everyone is done with buf (the previous step or product)
        nd_attn_stage_t(sa, A + d0, lda, rowsA, D - d0);
        nd_attn_stage_t(sb, B + d0, ldb, rowsB, D - d0);
        __syncthreads();
#pragma unroll 8
        for (int dd = 0; dd < ND_ATTN_DC; dd++) {
            float4 x = *(const float4*)(sa + dd * ND_ATTN_LD + ty * 4);
            float4 y = *(const float4*)(sb + dd * ND_ATTN_LD + tx * 4);
            float xa[4] = {x.x, x.y, x.z, x.w}, yb[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
            for (int a = 0; a < 4; a++)
#pragma unroll
                for (int b = 0; b < 4; b++) acc[a][b] += xa[a] * yb[b];
        }
    }
}

// Writes a thread's 4 × 4 tile t[a][b] transposed into ps[tx·4 + b][ty·4 + a] (ps is 64 × ND_ATTN_LD).
// The caller makes sure nobody still reads ps.
__device__ __forceinline__ void nd_attn_store_t(float* ps, float t[4][4]) {
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
    for (int b = 0; b < 4; b++)
        *(float4*)(ps + (tx * 4 + b) * ND_ATTN_LD + ty * 4) = make_float4(t[0][b], t[1][b], t[2][b], t[3][b]);
}

// acc[a][4g + e] += Σ_c ps[c][ty·4 + a] · X[c][tx·4 + 64g + e] over the c < rows valid rows of X
// (row-major, row stride ld, D columns). ps holds the left operand transposed (written by
// nd_attn_store_t before the call; the first barrier publishes it).
template <int NG>
__device__ void nd_attn_product(float acc[4][4 * NG], const float* ps, const float* X, long long ld, int rows, int D, float* buf) {
    constexpr int W = 64 * NG, XLD = W + 4, VC = NG == 4 ? 16 : 32;   // VC rows of X staged at a time
    static_assert(VC * XLD <= ND_ATTN_BUF, "staged rows exceed the shared buffer");
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
    for (int c0 = 0; c0 < rows; c0 += VC) {
        __syncthreads();
        for (int e = threadIdx.x; e < VC * W; e += 256) {
            int c = e / W, col = e % W;
            buf[c * XLD + col] = (c0 + c < rows && col < D) ? X[(c0 + c) * ld + col] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int c = 0; c < VC; c++) {
            float4 pv = *(const float4*)(ps + (c0 + c) * ND_ATTN_LD + ty * 4);
            float pa[4] = {pv.x, pv.y, pv.z, pv.w};
#pragma unroll
            for (int g = 0; g < NG; g++) {
                float4 xv = *(const float4*)(buf + c * XLD + tx * 4 + 64 * g);
                float xe[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
                for (int a = 0; a < 4; a++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[a][4 * g + e] += pa[a] * xe[e];
            }
        }
    }
}

// Writes a thread's rows × columns of a 64 × D result: dst[(r0 + ty·4 + a)·ld + col] for rows < valid.
template <int NG>
__device__ __forceinline__ void nd_attn_write(float* dst, long long ld, int valid, int D, float acc[4][4 * NG], const float rowScale[4]) {
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
    for (int a = 0; a < 4; a++) {
        int r = ty * 4 + a;
        if (r >= valid) continue;
#pragma unroll
        for (int g = 0; g < NG; g++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = tx * 4 + 64 * g + e;
                if (col < D) dst[r * ld + col] = acc[a][4 * g + e] * rowScale[a];
            }
    }
}

// out_i = Σ_j softmax_j(q_i·k_j·scale) z_ij v_j over the keys row i sees; lse_i = log Σ_j exp(q_i·k_j·scale).
template <int NG>
__device__ void nd_attn_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnParams& p) {
    __shared__ __align__(16) float ps[ND_ATTN_TILE * ND_ATTN_LD];
    __shared__ __align__(16) float buf[ND_ATTN_BUF];
    long long tiles = (p.tq + ND_ATTN_TILE - 1) / ND_ATTN_TILE;
    long long h = blockIdx.x % p.batchHeads, tile = tiles - 1 - blockIdx.x / p.batchHeads;   // longest causal rows first
    AttnHead at = nd_attn_head(p, h);
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15, D = (int)p.d;
    long long i0 = tile * ND_ATTN_TILE, shift = p.tk - p.tq;   // query i sits at absolute position shift + i
    int rowsQ = (int)nd_attn_min(ND_ATTN_TILE, p.tq - i0);
    long long keyEnd = p.causal ? nd_attn_min(p.tk, shift + i0 + rowsQ) : p.tk;   // keys any row of the tile sees
    const float* qt = q + at.q + i0 * at.row;
    float m[4], l[4], o[4][4 * NG];   // running max (base 2), this thread's share of the running sum, output
#pragma unroll
    for (int a = 0; a < 4; a++) {
        m[a] = ND_ATTN_NEG_INF; l[a] = 0.0f;
#pragma unroll
        for (int c = 0; c < 4 * NG; c++) o[a][c] = 0.0f;
    }
    for (long long j0 = 0; j0 < keyEnd; j0 += ND_ATTN_TILE) {
        int rowsK = (int)nd_attn_min(ND_ATTN_TILE, p.tk - j0);
        float s[4][4];
        nd_attn_dots(s, qt, at.row, rowsQ, k + at.k + j0 * at.row, at.row, rowsK, D, buf);
#pragma unroll
        for (int a = 0; a < 4; a++) {
            long long i = i0 + ty * 4 + a;
            long long last = i >= p.tq ? -1 : p.causal ? shift + i : p.tk - 1;   // the last key row i sees
            float mt = ND_ATTN_NEG_INF;
#pragma unroll
            for (int b = 0; b < 4; b++) {
                long long j = j0 + tx * 4 + b;
                s[a][b] = (j <= last && j < p.tk) ? s[a][b] * p.scaleLog2 : ND_ATTN_NEG_INF;
                mt = fmaxf(mt, s[a][b]);
            }
            mt = nd_attn_row_max(mt);
            float mNew = fmaxf(m[a], mt);
            float base = mNew == ND_ATTN_NEG_INF ? 0.0f : mNew;   // a row that has seen no key yet stays 0, not NaN
            float alpha = exp2f(m[a] - base);
            m[a] = mNew;
            l[a] *= alpha;
#pragma unroll
            for (int c = 0; c < 4 * NG; c++) o[a][c] *= alpha;
            float z[4] = {1.0f, 1.0f, 1.0f, 1.0f};
            if (p.dropout > 0.0f && j0 + tx * 4 <= last) nd_attn_keep(p, h, i, j0 + tx * 4, z);
#pragma unroll
            for (int b = 0; b < 4; b++) {
                float e = exp2f(s[a][b] - base);
                l[a] += e;            // the sum is of the weights before dropout, as on the CPU
                s[a][b] = e * z[b];
            }
        }
        nd_attn_store_t(ps, s);   // nobody reads ps: nd_attn_dots began with a barrier after the last product
        nd_attn_product<NG>(o, ps, v + at.v + j0 * at.row, at.row, rowsK, D, buf);
    }
    float inv[4];
#pragma unroll
    for (int a = 0; a < 4; a++) {
        float total = nd_attn_row_sum(l[a]);
        inv[a] = 1.0f / total;
        long long i = i0 + ty * 4 + a;
        if (tx == 0 && i < p.tq) lse[h * p.tq + i] = (m[a] + log2f(total)) * ND_ATTN_LN2;
    }
    nd_attn_write<NG>(out + at.out + i0 * at.outRow, at.outRow, rowsQ, D, o, inv);
}

// delta_i = Σ_d dout_id · out_id (= Σ_j p'_ij (dout_i · v_j)), one warp per row (B·H·Tq rows).
extern "C" __global__ void nd_attn_backward_delta(const float* __restrict__ out, const float* __restrict__ dout,
                                                  float* delta, AttnParams p) {
    long long r = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= p.batchHeads * p.tq) return;   // whole warps leave together
    AttnHead at = nd_attn_head(p, r / p.tq);
    long long at0 = at.out + (r % p.tq) * at.outRow;
    float acc = 0.0f;
    for (long long d = lane; d < p.d; d += 32) acc += out[at0 + d] * dout[at0 + d];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) delta[r] = acc;
}

// dq_i = Σ_j ds_ij k_j, ds_ij = p_ij (z_ij (dout_i · v_j) − delta_i)·scale, over a tile of query rows.
template <int NG>
__device__ void nd_attn_backward_dq(const float* q, const float* k, const float* v, const float* dout, const float* lse,
                                    const float* delta, float* dq, const AttnParams& p) {
    __shared__ __align__(16) float ps[ND_ATTN_TILE * ND_ATTN_LD];
    __shared__ __align__(16) float buf[ND_ATTN_BUF];
    long long tiles = (p.tq + ND_ATTN_TILE - 1) / ND_ATTN_TILE;
    long long h = blockIdx.x % p.batchHeads, tile = tiles - 1 - blockIdx.x / p.batchHeads;
    AttnHead at = nd_attn_head(p, h);
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15, D = (int)p.d;
    long long i0 = tile * ND_ATTN_TILE, shift = p.tk - p.tq;
    int rowsQ = (int)nd_attn_min(ND_ATTN_TILE, p.tq - i0);
    long long keyEnd = p.causal ? nd_attn_min(p.tk, shift + i0 + rowsQ) : p.tk;
    const float* qt = q + at.q + i0 * at.row;
    const float* gt = dout + at.out + i0 * at.outRow;
    float lse2[4], dl[4], acc[4][4 * NG];
#pragma unroll
    for (int a = 0; a < 4; a++) {
        long long i = i0 + ty * 4 + a;
        lse2[a] = i < p.tq ? lse[h * p.tq + i] * ND_ATTN_LOG2E : 0.0f;
        dl[a] = i < p.tq ? delta[h * p.tq + i] : 0.0f;
#pragma unroll
        for (int c = 0; c < 4 * NG; c++) acc[a][c] = 0.0f;
    }
    for (long long j0 = 0; j0 < keyEnd; j0 += ND_ATTN_TILE) {
        int rowsK = (int)nd_attn_min(ND_ATTN_TILE, p.tk - j0);
        const float* kt = k + at.k + j0 * at.row;
        float s[4][4], dp[4][4];
        nd_attn_dots(s, qt, at.row, rowsQ, kt, at.row, rowsK, D, buf);
        nd_attn_dots(dp, gt, at.outRow, rowsQ, v + at.v + j0 * at.row, at.row, rowsK, D, buf);
#pragma unroll
        for (int a = 0; a < 4; a++) {
            long long i = i0 + ty * 4 + a;
            long long last = i >= p.tq ? -1 : p.causal ? shift + i : p.tk - 1;
            float z[4] = {1.0f, 1.0f, 1.0f, 1.0f};
            if (p.dropout > 0.0f && j0 + tx * 4 <= last) nd_attn_keep(p, h, i, j0 + tx * 4, z);
#pragma unroll
            for (int b = 0; b < 4; b++) {
                long long j = j0 + tx * 4 + b;
                float pr = (j <= last && j < p.tk) ? exp2f(s[a][b] * p.scaleLog2 - lse2[a]) : 0.0f;
                s[a][b] = pr * (dp[a][b] * z[b] - dl[a]) * p.scale;
            }
        }
        nd_attn_store_t(ps, s);
        nd_attn_product<NG>(acc, ps, kt, at.row, rowsK, D, buf);
    }
    const float one[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    nd_attn_write<NG>(dq + at.q + i0 * at.row, at.row, rowsQ, D, acc, one);
}

// dv_j = Σ_i p_ij z_ij dout_i and dk_j = Σ_i ds_ij q_i over a tile of key rows (the queries that see them).
template <int NG>
__device__ void nd_attn_backward_dkdv(const float* q, const float* k, const float* v, const float* dout, const float* lse,
                                      const float* delta, float* dk, float* dv, const AttnParams& p) {
    __shared__ __align__(16) float ps[ND_ATTN_TILE * ND_ATTN_LD];
    __shared__ __align__(16) float buf[ND_ATTN_BUF];
    long long h = blockIdx.x % p.batchHeads, tile = blockIdx.x / p.batchHeads;   // first keys (most queries) first
    AttnHead at = nd_attn_head(p, h);
    int ty = threadIdx.x >> 4, tx = threadIdx.x & 15, D = (int)p.d;
    long long j0 = tile * ND_ATTN_TILE, shift = p.tk - p.tq;
    int rowsK = (int)nd_attn_min(ND_ATTN_TILE, p.tk - j0);
    const float* kt = k + at.k + j0 * at.row;
    const float* vt = v + at.v + j0 * at.row;
    float dkAcc[4][4 * NG], dvAcc[4][4 * NG];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int c = 0; c < 4 * NG; c++) { dkAcc[a][c] = 0.0f; dvAcc[a][c] = 0.0f; }
    // Causal: query i sees key j0 from i = j0 − shift on.
    for (long long i0 = p.causal ? nd_attn_max(0, j0 - shift) : 0; i0 < p.tq; i0 += ND_ATTN_TILE) {
        int rowsQ = (int)nd_attn_min(ND_ATTN_TILE, p.tq - i0);
        const float* qt = q + at.q + i0 * at.row;
        const float* gt = dout + at.out + i0 * at.outRow;
        float s[4][4], dp[4][4];   // transposed: [key ty·4 + a][query tx·4 + b]
        nd_attn_dots(s, kt, at.row, rowsK, qt, at.row, rowsQ, D, buf);
        nd_attn_dots(dp, vt, at.row, rowsK, gt, at.outRow, rowsQ, D, buf);
        float z[4][4];   // z[b][a]: keys j0 + ty·4 + a of query i0 + tx·4 + b
        float lse2[4], dl[4];
        long long jt = j0 + ty * 4;
#pragma unroll
        for (int b = 0; b < 4; b++) {
            long long i = i0 + tx * 4 + b;
            long long last = i >= p.tq ? -1 : p.causal ? shift + i : p.tk - 1;
            lse2[b] = i < p.tq ? lse[h * p.tq + i] * ND_ATTN_LOG2E : 0.0f;
            dl[b] = i < p.tq ? delta[h * p.tq + i] : 0.0f;
            z[b][0] = z[b][1] = z[b][2] = z[b][3] = 1.0f;
            if (p.dropout > 0.0f && jt <= last) nd_attn_keep(p, h, i, jt, z[b]);
#pragma unroll
            for (int a = 0; a < 4; a++) {
                long long j = jt + a;
                float pr = (j <= last && j < p.tk) ? exp2f(s[a][b] * p.scaleLog2 - lse2[b]) : 0.0f;
                s[a][b] = pr * z[b][a];                                    // p' = p·z, for dv
                dp[a][b] = pr * (dp[a][b] * z[b][a] - dl[b]) * p.scale;   // ds, for dk
            }
        }
        nd_attn_store_t(ps, s);
        nd_attn_product<NG>(dvAcc, ps, gt, at.outRow, rowsQ, D, buf);
        __syncthreads();   // the product has read ps
        nd_attn_store_t(ps, dp);
        nd_attn_product<NG>(dkAcc, ps, qt, at.row, rowsQ, D, buf);
    }
    const float one[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    nd_attn_write<NG>(dk + at.k + j0 * at.row, at.row, rowsK, D, dkAcc, one);
    nd_attn_write<NG>(dv + at.v + j0 * at.row, at.row, rowsK, D, dvAcc, one);
}

// Entry points by head-dim bound: d64 for D ≤ 64, d128 for D ≤ 128, d256 for D ≤ 256 (NG = 1, 2, 4).
// Two blocks per SM where that fits in 128 registers without spilling (ptxas -v); the bounds sit on
// declarations, in an order CUDAKernels.entryPoints does not scan, so it lists each kernel once, by
// its definition.
extern "C" __global__ __launch_bounds__(256, 2) void nd_attn_forward_d64(const float* __restrict__, const float* __restrict__,
    const float* __restrict__, float*, float*, AttnParams);
extern "C" __global__ __launch_bounds__(256, 2) void nd_attn_backward_dq_d64(const float* __restrict__, const float* __restrict__,
    const float* __restrict__, const float* __restrict__, const float* __restrict__, const float* __restrict__, float*, AttnParams);
extern "C" __global__ __launch_bounds__(256, 2) void nd_attn_backward_dkdv_d64(const float* __restrict__, const float* __restrict__,
    const float* __restrict__, const float* __restrict__, const float* __restrict__, const float* __restrict__, float*, float*, AttnParams);
extern "C" __global__ __launch_bounds__(256, 2) void nd_attn_forward_d128(const float* __restrict__, const float* __restrict__,
    const float* __restrict__, float*, float*, AttnParams);

extern "C" __global__ void nd_attn_forward_d64(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                               float* out, float* lse, AttnParams p) { nd_attn_forward<1>(q, k, v, out, lse, p); }
extern "C" __global__ void nd_attn_backward_dq_d64(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                   const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                                   float* dq, AttnParams p) { nd_attn_backward_dq<1>(q, k, v, dout, lse, delta, dq, p); }
extern "C" __global__ void nd_attn_backward_dkdv_d64(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                     const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                                     float* dk, float* dv, AttnParams p) { nd_attn_backward_dkdv<1>(q, k, v, dout, lse, delta, dk, dv, p); }
extern "C" __global__ void nd_attn_forward_d128(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                float* out, float* lse, AttnParams p) { nd_attn_forward<2>(q, k, v, out, lse, p); }
extern "C" __global__ void nd_attn_backward_dq_d128(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                    const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                                    float* dq, AttnParams p) { nd_attn_backward_dq<2>(q, k, v, dout, lse, delta, dq, p); }
extern "C" __global__ void nd_attn_backward_dkdv_d128(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                      const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                                      float* dk, float* dv, AttnParams p) { nd_attn_backward_dkdv<2>(q, k, v, dout, lse, delta, dk, dv, p); }
extern "C" __global__ void nd_attn_forward_d256(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                float* out, float* lse, AttnParams p) { nd_attn_forward<4>(q, k, v, out, lse, p); }
extern "C" __global__ void nd_attn_backward_dq_d256(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                    const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                                    float* dq, AttnParams p) { nd_attn_backward_dq<4>(q, k, v, dout, lse, delta, dq, p); }
extern "C" __global__ void nd_attn_backward_dkdv_d256(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                      const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                                                      float* dk, float* dv, AttnParams p) { nd_attn_backward_dkdv<4>(q, k, v, dout, lse, delta, dk, dv, p); }
"""#
}
