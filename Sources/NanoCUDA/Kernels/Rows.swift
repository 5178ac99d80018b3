// CUDA C++ for row kernels: LayerNorm with the residual add fused in, and cross-entropy over
// the vocabulary in chunks (the logits row is read twice, never materialised as probabilities).

extension CUDAKernels {
    static let rows = #"""
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    return v;
}

// residual_out = x + residual (when residual is non-null; residualOut may be null, and must not be
// x: the pointers are restrict); y = LayerNorm(x + residual)·w + b.
// One warp per row; saves mean and 1/std per row for backward.
extern "C" __global__ void layernorm_forward(const float* __restrict__ x, const float* __restrict__ residual,
                                             float* __restrict__ residualOut, const float* __restrict__ w,
                                             const float* __restrict__ b, float* __restrict__ y,
                                             float* __restrict__ mean, float* __restrict__ rstd,
                                             long rows, int cols, float eps) {
    long row = blockIdx.x * (long)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* xr = x + row * cols;
    float* sr = residualOut ? residualOut + row * cols : nullptr;
    float sum = 0.0f;
    for (int c = lane; c < cols; c += 32) {
        float v = xr[c] + (residual ? residual[row * cols + c] : 0.0f);
        if (sr) sr[c] = v;
        sum += v;
    }
    float m = warp_sum(sum) / cols;
    // The row's input again: the stored sum, or x (+ residual) when no sum is stored.
    auto input = [&](int c) { return sr ? sr[c] : xr[c] + (residual ? residual[row * cols + c] : 0.0f); };
    float var = 0.0f;
    for (int c = lane; c < cols; c += 32) { float d = input(c) - m; var += d * d; }
    float s = rsqrtf(warp_sum(var) / cols + eps);
    for (int c = lane; c < cols; c += 32) {
        float v = (input(c) - m) * s;
        y[row * cols + c] = v * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
    }
    if (lane == 0) { mean[row] = m; rstd[row] = s; }
}

// dx = rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)) with dŷ = dy·w; dw, db accumulated with atomics.
extern "C" __global__ void layernorm_backward(const float* __restrict__ x, const float* __restrict__ w,
                                              const float* __restrict__ mean, const float* __restrict__ rstd,
                                              const float* __restrict__ dy, float* __restrict__ dx,
                                              float* dw, float* db, long rows, int cols) {
    long row = blockIdx.x * (long)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* xr = x + row * cols;
    const float* gr = dy + row * cols;
    float m = mean[row], s = rstd[row];
    float sumG = 0.0f, sumGX = 0.0f;
    for (int c = lane; c < cols; c += 32) {
        float xh = (xr[c] - m) * s;
        float g = gr[c] * (w ? w[c] : 1.0f);
        sumG += g; sumGX += g * xh;
        if (dw) atomicAdd(dw + c, gr[c] * xh);
        if (db) atomicAdd(db + c, gr[c]);
    }
    sumG = warp_sum(sumG) / cols;
    sumGX = warp_sum(sumGX) / cols;
    for (int c = lane; c < cols; c += 32) {
        float xh = (xr[c] - m) * s;
        float g = gr[c] * (w ? w[c] : 1.0f);
        dx[row * cols + c] = s * (g - sumG - xh * sumGX);
    }
}

// Per-row cross-entropy of logits [rows, classes] against int targets (ignoreIndex → loss 0):
// online max/sum over the row in one pass, one warp per row. Saves the log-sum-exp.
extern "C" __global__ void cross_entropy_forward(const float* __restrict__ logits, const int* __restrict__ targets,
                                                 float* __restrict__ losses, float* __restrict__ lse,
                                                 long rows, int classes, int ignoreIndex) {
    long row = blockIdx.x * (long)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* lr = logits + row * classes;
    float m = (-__int_as_float(0x7f800000)), s = 0.0f;
    for (int c = lane; c < classes; c += 32) {
        float v = lr[c];
        // A −∞ logit adds nothing (and −∞ − (−∞) would be NaN).
        if (v > m) { s = s * __expf(m - v) + 1.0f; m = v; } else if (v > (-__int_as_float(0x7f800000))) { s += __expf(v - m); }
    }
    float M = warp_max(m);
    float S = warp_sum(m == (-__int_as_float(0x7f800000)) ? 0.0f : s * __expf(m - M));
    float l = M + __logf(S);
    if (lane == 0) {
        lse[row] = l;
        int t = targets[row];
        losses[row] = t == ignoreIndex ? 0.0f : l - lr[t];
    }
}

// dlogits = (softmax − onehot)·scale for kept rows, 0 for ignored ones.
extern "C" __global__ void cross_entropy_backward(const float* __restrict__ logits, const int* __restrict__ targets,
                                                  const float* __restrict__ lse, float* __restrict__ dlogits,
                                                  float scale, long rows, int classes, int ignoreIndex) {
    // Rows stride over grid.y (at most 65,535 blocks there), columns over grid.x.
    for (long row = blockIdx.y; row < rows; row += gridDim.y) {
        int t = targets[row];
        float l = lse[row];
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < classes; c += gridDim.x * blockDim.x) {
            float g = t == ignoreIndex ? 0.0f : (__expf(logits[row * classes + c] - l) - (c == t ? 1.0f : 0.0f)) * scale;
            dlogits[row * classes + c] = g;
        }
    }
}
"""#
}
