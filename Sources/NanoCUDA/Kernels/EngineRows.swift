// CUDA C++ for CUDABackend's row kernels (CUDABackend+Rows.swift), op for op NanoCPU's Rows
// kernels: reductions over an (outer, axis, inner) view, softmax, cumsum, LayerNorm, RMSNorm,
// cross-entropy, top-k, and the two whole-tensor reductions the host reads back (Σx², index range).
// Sizes are `long long`; flags and op codes are `int`. Row kernels give one warp to a row (256-thread
// blocks, 8 rows each) and loop when there are more rows than warps, so every loop is warp-uniform.

extension CUDAKernels {
    static let engineRows = #"""
#define ND_FULL_MASK 0xffffffffu

__device__ __forceinline__ float nd_neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ long long nd_min_ll(long long a, long long b) { return a < b ? a : b; }

__device__ __forceinline__ float nd_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(ND_FULL_MASK, v, o);
    return v;
}
__device__ __forceinline__ float nd_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(ND_FULL_MASK, v, o));
    return v;
}

// Loops over work items with one warp each: `item` is the same in every lane of a warp.
#define ND_WARP_LOOP(item, n) \
    for (long long item = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32; item < (n); \
         item += ((long long)gridDim.x * blockDim.x) / 32)
#define ND_GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// ---- Reductions (op 0 sum, 1 max). A long axis is split into `splits` parts reduced separately,
// then the (…, splits, …) partials are reduced again by the same kernel with splits = 1.

// x (rows, cols) → out (rows, splits): out[row, part] = op over the part's ⌈cols/splits⌉ columns.
// One warp per (row, part).
extern "C" __global__ void nd_reduce_rows(const float* x, float* out, long long rows, long long cols, long long splits, int op) {
    const int lane = threadIdx.x % 32;
    const long long chunk = (cols + splits - 1) / splits;
    ND_WARP_LOOP(item, rows * splits) {
        const long long row = item / splits, part = item - row * splits;
        const long long hi = nd_min_ll(cols, (part + 1) * chunk);
        const float* xr = x + row * cols;
        float acc = op == 0 ? 0.0f : nd_neg_inf();
        for (long long c = part * chunk + lane; c < hi; c += 32) acc = op == 0 ? acc + xr[c] : fmaxf(acc, xr[c]);
        acc = op == 0 ? nd_warp_sum(acc) : nd_warp_max(acc);
        if (lane == 0) out[item] = acc;
    }
}

// x (outer, axis, inner) → out (outer, splits, inner): out[o, part, i] = op over the part's rows j of x[o, j, i].
// One thread per output element (consecutive threads read consecutive i).
extern "C" __global__ void nd_reduce_axis(const float* x, float* out, long long outer, long long axis, long long inner,
                                          long long splits, int op) {
    const long long chunk = (axis + splits - 1) / splits;
    ND_GRID_STRIDE(e, outer * splits * inner) {
        const long long t = e / inner, i = e - t * inner, o = t / splits, part = t - o * splits;
        const long long hi = nd_min_ll(axis, (part + 1) * chunk);
        const float* src = x + o * axis * inner + i;
        float acc = op == 0 ? 0.0f : nd_neg_inf();
        for (long long j = part * chunk; j < hi; j++) acc = op == 0 ? acc + src[j * inner] : fmaxf(acc, src[j * inner]);
        out[e] = acc;
    }
}

// ---- Softmax   x, y: (rows, cols)

// Max M and Σ exp(x − M) of a row, online in one pass (Milakov & Gimelshein 2018); lanes merged.
// −inf entries add nothing (a row of −inf gives M = −inf, S = 0, as the CPU's two passes do); NaN propagates into S.
__device__ __forceinline__ void nd_row_max_sum(const float* xr, int cols, int lane, float& M, float& S) {
    const float ninf = nd_neg_inf();
    float m = ninf, s = 0.0f;
    for (int c = lane; c < cols; c += 32) {
        float v = xr[c];
        if (v > m) { s = s * __expf(m - v) + 1.0f; m = v; }
        else if (!(v == ninf && m == ninf)) s += __expf(v - m);
    }
    M = nd_warp_max(m);
    S = nd_warp_sum(m == ninf ? s : s * __expf(m - M));
}

// Log-sum-exp of a row from nd_row_max_sum: −inf for a row of −inf (the CPU's rowLogSumExp).
__device__ __forceinline__ float nd_lse(float M, float S) { return M == nd_neg_inf() ? M : M + __logf(S); }

// y = softmax(x) (logSoftmax 0) or x − logsumexp(x) (1) per row.
extern "C" __global__ void nd_softmax_forward(const float* x, float* y, long long rows, long long cols, int logSoftmax) {
    const int lane = threadIdx.x % 32, n = (int)cols;
    ND_WARP_LOOP(row, rows) {
        const float* xr = x + row * cols;
        float* yr = y + row * cols;
        float M, S;
        nd_row_max_sum(xr, n, lane, M, S);
        if (logSoftmax) {
            const float l = nd_lse(M, S);
            for (int c = lane; c < n; c += 32) yr[c] = xr[c] - l;
        } else {
            const float inv = 1.0f / S;
            for (int c = lane; c < n; c += 32) yr[c] = __expf(xr[c] - M) * inv;
        }
    }
}

// softmax: dx = y ⊙ (dy − Σ dy·y); log-softmax: dx = dy − exp(y) · Σ dy.   y, dy, dx: (rows, cols)
extern "C" __global__ void nd_softmax_backward(const float* y, const float* dy, float* dx, long long rows, long long cols,
                                               int logSoftmax) {
    const int lane = threadIdx.x % 32, n = (int)cols;
    ND_WARP_LOOP(row, rows) {
        const float* yr = y + row * cols;
        const float* gr = dy + row * cols;
        float* dr = dx + row * cols;
        float acc = 0.0f;
        for (int c = lane; c < n; c += 32) acc += logSoftmax ? gr[c] : gr[c] * yr[c];
        acc = nd_warp_sum(acc);
        for (int c = lane; c < n; c += 32) dr[c] = logSoftmax ? gr[c] - __expf(yr[c]) * acc : yr[c] * (gr[c] - acc);
    }
}

// ---- Cumulative sum along the axis of x, out: (outer, axis, inner); reverse 1 sums from the end.

// One thread per (o, i) column, adding in order along the axis as the CPU does (many columns, i contiguous).
extern "C" __global__ void nd_cumsum_columns(const float* x, float* out, long long outer, long long axis, long long inner, int reverse) {
    ND_GRID_STRIDE(col, outer * inner) {
        const long long o = col / inner, i = col - o * inner, base = o * axis * inner + i;
        float acc = 0.0f;
        for (long long jj = 0; jj < axis; jj++) {
            const long long at = base + (reverse ? axis - 1 - jj : jj) * inner;
            acc += x[at];
            out[at] = acc;
        }
    }
}

// One warp per (o, i) column: 32 positions at a time, scanned with shuffles, the running total carried
// (few columns, long axis: a vocabulary row, tokens × experts).
extern "C" __global__ void nd_cumsum_scan(const float* x, float* out, long long outer, long long axis, long long inner, int reverse) {
    const int lane = threadIdx.x % 32;
    ND_WARP_LOOP(col, outer * inner) {
        const long long o = col / inner, i = col - o * inner, base = o * axis * inner + i;
        float carry = 0.0f;
        for (long long t = 0; t < axis; t += 32) {
            const long long jj = t + lane;
            const long long at = base + (reverse ? axis - 1 - jj : jj) * inner;
            float v = jj < axis ? x[at] : 0.0f;
            for (int d = 1; d < 32; d <<= 1) {
                float u = __shfl_up_sync(ND_FULL_MASK, v, d);
                if (lane >= d) v += u;
            }
            v += carry;
            if (jj < axis) out[at] = v;
            carry = __shfl_sync(ND_FULL_MASK, v, 31);
        }
    }
}

// ---- LayerNorm and RMSNorm   x, y, dy, dx: (rows, cols); weight, bias, dweight, dbias: (cols); mean, rstd: (rows)

// y = (x − mean)·rstd·w + b with rstd = 1/√(var + eps); w, b may be null. Saves mean and rstd per row.
extern "C" __global__ void nd_layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                                                long long rows, long long cols, float eps) {
    const int lane = threadIdx.x % 32, n = (int)cols;
    ND_WARP_LOOP(row, rows) {
        const float* xr = x + row * cols;
        float* yr = y + row * cols;
        float sum = 0.0f;
        for (int c = lane; c < n; c += 32) sum += xr[c];
        const float m = nd_warp_sum(sum) / n;
        float var = 0.0f;
        for (int c = lane; c < n; c += 32) { float d = xr[c] - m; var += d * d; }
        const float rs = rsqrtf(nd_warp_sum(var) / n + eps);
        for (int c = lane; c < n; c += 32) yr[c] = (xr[c] - m) * rs * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
        if (lane == 0) { mean[row] = m; rstd[row] = rs; }
    }
}

// RMSNorm (Zhang & Sennrich 2019): y = x·rstd·w with rstd = 1/√(mean(x²) + eps); w may be null.
extern "C" __global__ void nd_rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, long long rows, long long cols,
                                              float eps) {
    const int lane = threadIdx.x % 32, n = (int)cols;
    ND_WARP_LOOP(row, rows) {
        const float* xr = x + row * cols;
        float* yr = y + row * cols;
        float ss = 0.0f;
        for (int c = lane; c < n; c += 32) ss += xr[c] * xr[c];
        const float rs = rsqrtf(nd_warp_sum(ss) / n + eps);
        for (int c = lane; c < n; c += 32) yr[c] = xr[c] * rs * (w ? w[c] : 1.0f);
        if (lane == 0) rstd[row] = rs;
    }
}

// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy⊙w, x̂ = (x − mean)·rstd. RMSNorm passes mean = null:
// x̂ = x·rstd and no mean(g) term. w may be null.
extern "C" __global__ void nd_norm_backward_dx(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                                               float* dx, long long rows, long long cols) {
    const int lane = threadIdx.x % 32, n = (int)cols;
    ND_WARP_LOOP(row, rows) {
        const float* xr = x + row * cols;
        const float* gr = dy + row * cols;
        float* dr = dx + row * cols;
        const float m = mean ? mean[row] : 0.0f, rs = rstd[row];
        float sg = 0.0f, sgx = 0.0f;
        for (int c = lane; c < n; c += 32) {
            float g = gr[c] * (w ? w[c] : 1.0f);
            sg += g;
            sgx += g * ((xr[c] - m) * rs);
        }
        const float meanG = mean ? nd_warp_sum(sg) / n : 0.0f;
        const float meanGX = nd_warp_sum(sgx) / n;
        for (int c = lane; c < n; c += 32) {
            float g = gr[c] * (w ? w[c] : 1.0f);
            dr[c] = rs * (g - meanG - (xr[c] - m) * rs * meanGX);
        }
    }
}

// Column sums for the parameters' gradients over the rows of one part (⌈rows/splits⌉ rows each):
// dw[part, c] = Σ dy·x̂, db[part, c] = Σ dy; either may be null; mean null for RMSNorm.
// → (splits, cols) partials (the gradients themselves when splits = 1). Columns over grid.x, parts over grid.y.
extern "C" __global__ void nd_norm_backward_params(const float* x, const float* mean, const float* rstd, const float* dy,
                                                   float* dw, float* db, long long rows, long long cols, long long splits) {
    const long long chunk = (rows + splits - 1) / splits;
    for (long long part = blockIdx.y; part < splits; part += gridDim.y) {
        const long long hi = nd_min_ll(rows, (part + 1) * chunk);
        for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (long long)gridDim.x * blockDim.x) {
            float sw = 0.0f, sb = 0.0f;
            for (long long r = part * chunk; r < hi; r++) {
                const float g = dy[r * cols + c];
                sw += g * ((x[r * cols + c] - (mean ? mean[r] : 0.0f)) * rstd[r]);
                sb += g;
            }
            if (dw) dw[part * cols + c] = sw;
            if (db) db[part * cols + c] = sb;
        }
    }
}

// ---- Cross-entropy   logits, dlogits: (rows, classes); targets (int32), losses, lse: (rows)

// losses = logsumexp(row) − logit[target] (0 where target = ignoreIndex); saves the log-sum-exp.
extern "C" __global__ void nd_cross_entropy_forward(const float* logits, const int* targets, float* losses, float* lse,
                                                    long long rows, long long classes, int ignoreIndex) {
    const int lane = threadIdx.x % 32;
    ND_WARP_LOOP(row, rows) {
        const float* xr = logits + row * classes;
        float M, S;
        nd_row_max_sum(xr, (int)classes, lane, M, S);
        if (lane == 0) {
            const float l = nd_lse(M, S);
            const int t = targets[row];
            lse[row] = l;
            // Targets are validated by the engine; an out-of-range one reads nothing and gives NaN.
            losses[row] = t == ignoreIndex ? 0.0f : (t >= 0 && t < classes) ? l - xr[t] : __int_as_float(0x7fc00000);
        }
    }
}

// dlogits = softmax·scale − scale at the target, 0 for ignored rows. Columns over grid.x, rows over grid.y.
extern "C" __global__ void nd_cross_entropy_backward(const float* logits, const int* targets, const float* lse, float* dlogits,
                                                     float scale, const float* scaleBy, long long rows, long long classes,
                                                     int ignoreIndex) {
    if (scaleBy) scale *= scaleBy[0];   // the upstream gradient, read on the device (recorded graphs)
    for (long long row = blockIdx.y; row < rows; row += gridDim.y) {
        const int t = targets[row];
        const float l = lse[row];
        const float* xr = logits + row * classes;
        float* dr = dlogits + row * classes;
        for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < classes; c += (long long)gridDim.x * blockDim.x)
            dr[c] = t == ignoreIndex ? 0.0f : __expf(xr[c] - l) * scale - (c == t ? scale : 0.0f);
    }
}

// ---- Top-k   x: (rows, cols) → values (float), indices (int32): (rows, k), descending.

// a comes before b: the larger value, or the lower index among equal values (the CPU's insertion order).
__device__ __forceinline__ bool nd_topk_before(float av, int ai, float bv, int bi) { return av > bv || (av == bv && ai < bi); }

#define ND_TOPK_CHUNK 32
// One warp per row, ND_TOPK_CHUNK results at a time: each lane keeps the best of its columns (c ≡ lane mod 32)
// that come after the last result written, by the CPU's insertion, then the lanes' sorted lists are merged
// by a warp arg-best over their heads. Small k (experts per token, sampling) takes one pass over the row.
extern "C" __global__ void nd_topk(const float* x, float* values, int* indices, long long rows, long long cols, long long k) {
    const int lane = threadIdx.x % 32, n = (int)cols;
    ND_WARP_LOOP(row, rows) {
        const float* xr = x + row * cols;
        float* vr = values + row * k;
        int* ir = indices + row * k;
        float lastV = 0.0f;
        int lastI = -1;   // the last result written (none yet while -1)
        for (long long done = 0; done < k;) {
            const int want = (int)nd_min_ll(k - done, ND_TOPK_CHUNK);
            float lv[ND_TOPK_CHUNK];
            int li[ND_TOPK_CHUNK];
            int filled = 0;
            for (int c = lane; c < n; c += 32) {
                const float v = xr[c];
                if (lastI >= 0 && !nd_topk_before(lastV, lastI, v, c)) continue;   // already written
                if (filled == want && !(v > lv[want - 1])) continue;
                int pos = filled < want ? filled : want - 1;
                while (pos > 0 && v > lv[pos - 1]) { lv[pos] = lv[pos - 1]; li[pos] = li[pos - 1]; pos--; }
                lv[pos] = v;
                li[pos] = c;
                if (filled < want) filled++;
            }
            int head = 0;
            for (int r = 0; r < want; r++) {
                float bv = head < filled ? lv[head] : 0.0f;
                int bi = head < filled ? li[head] : -1;   // -1: this lane has nothing left
                for (int o = 16; o > 0; o >>= 1) {
                    const float ov = __shfl_xor_sync(ND_FULL_MASK, bv, o);
                    const int oi = __shfl_xor_sync(ND_FULL_MASK, bi, o);
                    if (oi >= 0 && (bi < 0 || nd_topk_before(ov, oi, bv, bi))) { bv = ov; bi = oi; }
                }
                if (head < filled && li[head] == bi) head++;
                if (lane == 0) { vr[done + r] = bv; ir[done + r] = bi; }
                lastV = bv;
                lastI = bi;
            }
            done += want;
        }
    }
}

// ---- Whole-tensor reductions read back by the host, one partial per block (blocks of 256 threads).

// The block's total of each thread's double `acc` (blocks of at most 256 threads), in thread 0;
// the same order of additions every time (warp shuffles, then the warps in order).
__device__ double nd_block_sum_double(double acc) {
    __shared__ double warps[8];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(ND_FULL_MASK, acc, o);
    if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = acc;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < (int)(blockDim.x / 32); w++) total += warps[w];
    return total;
}

// partial[block] = Σ x² over the block's share, accumulated in double.
extern "C" __global__ void nd_sum_of_squares(const float* x, double* partial, long long n) {
    double acc = 0.0;
    ND_GRID_STRIDE(i, n) { const double v = x[i]; acc += v * v; }
    const double total = nd_block_sum_double(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// out[0] = sqrt(Σ partial) as float: one block, each thread a fixed stride of the partials.
extern "C" __global__ void nd_norm_of_partials(const double* partial, long long n, float* out) {
    double acc = 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
    const double total = nd_block_sum_double(acc);
    if (threadIdx.x == 0) out[0] = (float)sqrt(total);
}

// partial[2·block], partial[2·block + 1] = min and max of the block's share of an int32 tensor.
extern "C" __global__ void nd_index_range(const int* index, int* partial, long long n) {
    __shared__ int lows[8], highs[8];
    int lo = 0x7fffffff, hi = (int)0x80000000;
    ND_GRID_STRIDE(i, n) { const int v = index[i]; lo = min(lo, v); hi = max(hi, v); }
    for (int o = 16; o > 0; o >>= 1) {
        lo = min(lo, __shfl_xor_sync(ND_FULL_MASK, lo, o));
        hi = max(hi, __shfl_xor_sync(ND_FULL_MASK, hi, o));
    }
    if (threadIdx.x % 32 == 0) { lows[threadIdx.x / 32] = lo; highs[threadIdx.x / 32] = hi; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x / 32); w++) { lo = min(lo, lows[w]); hi = max(hi, highs[w]); }
        partial[2 * blockIdx.x] = lo;
        partial[2 * blockIdx.x + 1] = hi;
    }
}
"""#
}
