// CUDA C++ for CUDABackend's index ops (CUDABackend+Indexing.swift), op for op NanoCPU's Indexing
// kernels: index-select (any 4- or 2-byte element: float32, int32, bf16, fp16, uint16), index-add,
// gather and scatter-add (float32). Indices are int32, range-checked by the engine before a launch.
// One thread per element in grid-stride loops; the accumulating kernels add with atomics because
// indices may repeat, so their sums are not in the CPU's order (same values up to rounding).

extension CUDAKernels {
    static let engineIndexing = #"""
#define ND_GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// out[o, j, i] = x[o, index[j], i]   x: (outer, axis, inner), index: (n), out: (outer, n, inner)
template <typename T>
__device__ __forceinline__ void nd_index_select(const T* x, const int* index, T* out, long long outer, long long axis, long long inner,
                                                long long n) {
    ND_GRID_STRIDE(e, outer * n * inner) {
        const long long row = e / inner, i = e - row * inner, o = row / n, j = row - o * n;
        out[e] = x[(o * axis + index[j]) * inner + i];
    }
}
extern "C" __global__ void nd_index_select_b32(const unsigned int* x, const int* index, unsigned int* out, long long outer,
                                               long long axis, long long inner, long long n) {
    nd_index_select(x, index, out, outer, axis, inner, n);
}
extern "C" __global__ void nd_index_select_b16(const unsigned short* x, const int* index, unsigned short* out, long long outer,
                                               long long axis, long long inner, long long n) {
    nd_index_select(x, index, out, outer, axis, inner, n);
}

// out[o, index[j], i] += src[o, j, i]   src: (outer, n, inner), index: (n), out: (outer, axis, inner)
extern "C" __global__ void nd_index_add(const float* src, const int* index, float* out, long long outer, long long axis, long long inner,
                                        long long n) {
    ND_GRID_STRIDE(e, outer * n * inner) {
        const long long row = e / inner, i = e - row * inner, o = row / n, j = row - o * n;
        atomicAdd(out + (o * axis + index[j]) * inner + i, src[e]);
    }
}

// out[o, j, i] = x[o, index[o, j, i], i]   x: (outer, axis, inner); index, out: (outer, J, inner)
extern "C" __global__ void nd_gather(const float* x, const int* index, float* out, long long outer, long long axis, long long inner,
                                     long long J) {
    ND_GRID_STRIDE(e, outer * J * inner) {
        const long long row = e / inner, i = e - row * inner, o = row / J;
        out[e] = x[(o * axis + index[e]) * inner + i];
    }
}

// out[o, index[o, j, i], i] += src[o, j, i]   src, index: (outer, J, inner); out: (outer, axis, inner)
extern "C" __global__ void nd_scatter_add(const float* src, const int* index, float* out, long long outer, long long axis, long long inner,
                                          long long J) {
    ND_GRID_STRIDE(e, outer * J * inner) {
        const long long row = e / inner, i = e - row * inner, o = row / J;
        atomicAdd(out + (o * axis + index[e]) * inner + i, src[e]);
    }
}
"""#
}
