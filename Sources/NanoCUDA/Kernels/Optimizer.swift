// CUDA C++ for the optimizer: AdamW over many tensors in one launch (a table of chunks), and the
// global gradient norm as a sum of squares.

extension CUDAKernels {
    static let optimizer = #"""
// One entry per tensor; blockIdx.y picks the tensor, blocks along x stride over its elements.
struct AdamWTensor { float* param; const float* grad; float* m; float* v; long n; float weightDecay; };

extern "C" __global__ void adamw_multi_tensor(const AdamWTensor* __restrict__ tensors, float lr, float beta1, float beta2,
                                              float eps, float biasCorrection1, float biasCorrection2, float gradScale) {
    AdamWTensor t = tensors[blockIdx.y];
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < t.n; i += (long)gridDim.x * blockDim.x) {
        float g = t.grad[i] * gradScale;   // gradScale folds clipping (and fp16 loss unscaling) in
        float m = beta1 * t.m[i] + (1.0f - beta1) * g;
        float v = beta2 * t.v[i] + (1.0f - beta2) * g * g;
        t.m[i] = m; t.v[i] = v;
        float mhat = m / biasCorrection1, vhat = v / biasCorrection2;
        t.param[i] -= lr * (mhat / (sqrtf(vhat) + eps) + t.weightDecay * t.param[i]);
    }
}

// Σ x² into *out (zeroed by the caller), block partial sums then one atomic per block.
extern "C" __global__ void sum_of_squares(const float* __restrict__ x, long n, float* out) {
    __shared__ float partial[32];
    float acc = 0.0f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) acc += x[i] * x[i];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffff, acc, o);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
        if (threadIdx.x == 0) atomicAdd(out, v);
    }
}

// fp16 dynamic loss scaling: sets *found to 1 when any gradient is inf or NaN.
extern "C" __global__ void find_non_finite(const float* __restrict__ x, long n, int* found) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        if (!isfinite(x[i])) { *found = 1; return; }
}
"""#
}
