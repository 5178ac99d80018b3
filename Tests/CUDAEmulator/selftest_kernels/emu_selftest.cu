// Kernels that test the emulator itself (emu_selftest.cpp runs them): built-in variables, argument
// passing, barriers, shared memory, warp operations on partial warps, conversions, and misuse that
// must abort with a clear message. Written as an NVRTC unit would be.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

struct EmuArgs { char c; double d; short s[3]; };   // padding inside, 24 bytes

// Every thread writes its coordinates: out[linear thread of the grid] = packed ids.
extern "C" __global__ void emu_ids(unsigned* out) {
    unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned n = blockDim.x * blockDim.y * blockDim.z;
    out[4 * (block * n + thread) + 0] = threadIdx.x | threadIdx.y << 10 | threadIdx.z << 20;
    out[4 * (block * n + thread) + 1] = blockIdx.x | blockIdx.y << 10 | blockIdx.z << 20;
    out[4 * (block * n + thread) + 2] = blockDim.x | blockDim.y << 10 | blockDim.z << 20;
    out[4 * (block * n + thread) + 3] = gridDim.x | gridDim.y << 10 | gridDim.z << 20;
}

extern "C" __global__ void emu_args(char a, short b, int c, long long d, float e, double f, EmuArgs s, unsigned char g,
                                    const float* __restrict__ p, double* out) {
    // Kernel parameters are per-thread copies: changing one must not affect other threads.
    c += threadIdx.x;
    if (threadIdx.x == 1) {
        out[0] = a; out[1] = b; out[2] = c; out[3] = (double)d; out[4] = e; out[5] = f;
        out[6] = s.c; out[7] = s.d; out[8] = s.s[0]; out[9] = s.s[1]; out[10] = s.s[2]; out[11] = g; out[12] = p[0];
    }
}

// Block sum through shared memory and a barrier; also __syncthreads_count / _and / _or.
extern "C" __global__ void emu_block_sum(const float* x, float* out, int* counts) {
    __shared__ float partial[1024];
    partial[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    int c = __syncthreads_count(threadIdx.x % 3 == 0);
    int all = __syncthreads_and(threadIdx.x < blockDim.x);
    int any = __syncthreads_or(threadIdx.x == 5);
    if (threadIdx.x == 0) { out[blockIdx.x] = partial[0]; counts[3 * blockIdx.x] = c; counts[3 * blockIdx.x + 1] = all; counts[3 * blockIdx.x + 2] = any; }
}

// A neighbour exchange through shared memory: with_barrier 0 is a data race (the result depends
// on the order threads run in), 1 is correct.
extern "C" __global__ void emu_neighbour(int* out, int with_barrier) {
    __shared__ int s[256];
    s[threadIdx.x] = (int)threadIdx.x + 1000;
    if (with_barrier) __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// Reads shared memory nobody wrote in this block: poison (0xFFFFFFFF) under the emulator.
extern "C" __global__ void emu_unwritten_shared(unsigned* out) {
    __shared__ unsigned s[4];
    if (blockIdx.x == 0 && threadIdx.x == 0) s[1] = 7;   // block 1 must not see this
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = s[1];
}

// Warp operations on a block whose last warp is partial (blockDim.x = 40: lanes 0..7 of warp 1).
extern "C" __global__ void emu_warp_ops(const int* x, int* up, int* idx, unsigned* ballot, int* sums, double* dbl, int* sub) {
    int t = threadIdx.x, v = x[t];
    up[t] = __shfl_up_sync(0xffffffffu, v, 1);
    idx[t] = __shfl_sync(0xffffffffu, v, 3);
    ballot[t] = __ballot_sync(0xffffffffu, v % 2 == 0);
    int s = v;
    for (int o = 1; o < 32; o <<= 1) {   // inclusive scan
        int u = __shfl_up_sync(0xffffffffu, s, o);
        if ((t % 32) >= o) s += u;
    }
    sums[t] = s;
    double d = (double)v + 0.25;
    dbl[t] = __shfl_xor_sync(0xffffffffu, d, 1);   // pairs stay inside the 8 lanes of the partial warp
    // width 8: xor within groups of 8 (lanes 0..7 of the partial warp are a whole group).
    int w = v;
    for (int o = 4; o > 0; o >>= 1) w += __shfl_xor_sync(0xffffffffu, w, o, 8);
    sub[t] = w + 1000 * __any_sync(0xffffffffu, v == 3) + 10000 * __all_sync(0xffffffffu, v >= 0) + 100000 * (int)__reduce_add_sync(0xffffffffu, 1u);
}

// Conversions: bf16, fp16 (both ways), fp16 from double, erfinv.
extern "C" __global__ void emu_convert(const float* x, unsigned short* bf, unsigned short* hf, float* hback, unsigned short* bfz,
                                       unsigned short* hfz, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        bf[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
        hf[i] = __half_as_ushort(__float2half_rn(x[i]));
        hback[i] = __half2float(__ushort_as_half(hf[i]));
        bfz[i] = __bfloat16_as_ushort(__float2bfloat16_rz(x[i]));
        hfz[i] = __half_as_ushort(__float2half_rz(x[i]));
    }
}
extern "C" __global__ void emu_convert_double(const double* x, unsigned short* bf, unsigned short* hf, double* inv, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        bf[i] = __bfloat16_as_ushort(__double2bfloat16(x[i]));
        hf[i] = __half_as_ushort(__double2half(x[i]));
        inv[i] = erfinv(x[i]);
    }
}

// A large block with a deep stack (16 KiB of locals per thread) and every thread at a barrier.
extern "C" __global__ void emu_big_block(float* out) {
    float local[4096];
    for (int i = 0; i < 4096; i++) local[i] = (float)(i + threadIdx.x);
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < 4096; i += 512) s += local[i];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

// ---- Misuse: each of these must abort with a message (run in a child process).

extern "C" __global__ void emu_fault_return_before_barrier(int* out) {
    if (threadIdx.x == 3) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}
extern "C" __global__ void emu_fault_divergent_barrier(int* out) {
    if (threadIdx.x < 16) { out[threadIdx.x] = 1; __syncthreads(); }
    else { out[threadIdx.x] = 2; __syncthreads(); }
}
extern "C" __global__ void emu_fault_shfl_after_return(float* out) {
    if (threadIdx.x % 32 == 5) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
extern "C" __global__ void emu_fault_shfl_missing_lane(float* out) {   // launched with 40 threads
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 16);
}
extern "C" __global__ void emu_fault_mixed_deadlock(float* out) {
    if (threadIdx.x % 32 < 16) __syncthreads();
    else out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
extern "C" __global__ __launch_bounds__(64) void emu_fault_bounds(float* out) { out[threadIdx.x] = 0.0f; }
extern "C" __global__ void emu_fault_bad_pointer(float* p) { p[threadIdx.x + 100000000] = 1.0f; }
__device__ __noinline__ int emu_deep(int n) {
    volatile char frame[1024];
    frame[n % 1024] = (char)n;
    return n == 0 ? frame[0] : emu_deep(n - 1) + frame[n % 1024];
}
extern "C" __global__ void emu_fault_stack_overflow(int* out) { out[threadIdx.x] = emu_deep(100000); }
