// CUDA C++ for pointwise kernels, compiled at run time by NVRTC. Floats are fp32 in memory unless
// the name says bf16; the bf16 forms read/write __nv_bfloat16 and compute in fp32.

extension CUDAKernels {
    static let elementwise = #"""
#include <cuda_bf16.h>

// GELU, tanh approximation (GPT-2): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
__device__ __forceinline__ float gelu_f(float x) {
    const float c = 0.7978845608028654f;
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float gelu_grad_f(float x) {
    const float c = 0.7978845608028654f;
    float u = c * (x + 0.044715f * x * x * x);
    float t = tanhf(u);
    float du = c * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

extern "C" __global__ void gelu_forward(const float* __restrict__ x, float* __restrict__ y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = gelu_f(x[i]);
}

extern "C" __global__ void gelu_backward(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) dx[i] = dy[i] * gelu_grad_f(x[i]);
}

// out = a + b (same shapes), or a + b broadcast over rows when b has `cols` elements.
// out may be a (in place): a is not __restrict__.
extern "C" __global__ void add(const float* a, const float* __restrict__ b, float* out, long n, long bCount) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) out[i] = a[i] + b[i % bCount];
}

extern "C" __global__ void affine(const float* __restrict__ x, float* y, float scale, float shift, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = scale * x[i] + shift;
}

extern "C" __global__ void fill(float* y, float value, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = value;
}

extern "C" __global__ void cast_f32_bf16(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = __float2bfloat16_rn(x[i]);
}

extern "C" __global__ void cast_bf16_f32(const __nv_bfloat16* __restrict__ x, float* __restrict__ y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = __bfloat162float(x[i]);
}

// Embedding lookup: out[r, :] = table[ids[r], :]; one block per row.
extern "C" __global__ void embedding_forward(const float* __restrict__ table, const int* __restrict__ ids, float* __restrict__ out, int dim) {
    const float* src = table + (long)ids[blockIdx.x] * dim;
    float* dst = out + (long)blockIdx.x * dim;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) dst[c] = src[c];
}

// Embedding gradient: dtable[ids[r], :] += dout[r, :] (rows may repeat: atomics).
extern "C" __global__ void embedding_backward(const float* __restrict__ dout, const int* __restrict__ ids, float* dtable, int dim) {
    float* dst = dtable + (long)ids[blockIdx.x] * dim;
    const float* src = dout + (long)blockIdx.x * dim;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) atomicAdd(dst + c, src[c]);
}

// Column sums of a [rows, cols] matrix (bias gradients): one thread per column, rows in a loop.
extern "C" __global__ void column_sum(const float* __restrict__ x, float* __restrict__ out, long rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float acc = 0.0f;
    for (long r = 0; r < rows; r++) acc += x[r * cols + c];
    out[c] = acc;
}

// Heads ↔ rows: rows [B, T, parts, H, D] (the QKV projection's output when parts = 3, an
// attention output's [B, T, C] when parts = 1) ↔ heads [B, H, T, D] for part `which`.
// toHeads = 1 gathers the part's heads out of rows; 0 scatters heads back into rows.
extern "C" __global__ void heads_permute(float* rows, float* heads, int B, int T, int H, int D, int parts, int which, int toHeads) {
    long n = (long)B * H * T * D;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int d = i % D; long r = i / D;
        int t = r % T; r /= T;
        int h = r % H; int b = r / H;
        long j = (((long)b * T + t) * parts + which) * (long)H * D + (long)h * D + d;
        if (toHeads) heads[i] = rows[j]; else rows[j] = heads[i];
    }
}
"""#
}
