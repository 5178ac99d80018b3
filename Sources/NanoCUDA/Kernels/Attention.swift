// CUDA C++ for causal attention without a T×T matrix in memory (FlashAttention's online softmax).
// q, k, v, out: [B·H, T, D] fp32, D ≤ 128; one warp per query row, each lane holding D/32 of the
// row's accumulator. A correct baseline, not the tensor-core kernel the speed target needs.

extension CUDAKernels {
    static let attention = #"""
#define MAX_PER_LANE 4   // D ≤ 128

__device__ __forceinline__ float warp_sum_a(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

// out_i = Σ_j softmax_j(q_i·k_j·scale) v_j over j ≤ i; lse_i = log Σ_j exp(q_i·k_j·scale).
extern "C" __global__ void attention_forward(const float* __restrict__ q, const float* __restrict__ k,
                                             const float* __restrict__ v, float* __restrict__ out,
                                             float* __restrict__ lse, int heads, int T, int D, float scale) {
    int warpsPerBlock = blockDim.x / 32;
    int i = blockIdx.x * warpsPerBlock + threadIdx.x / 32;   // query row
    int h = blockIdx.y;                                      // batch · heads index
    int lane = threadIdx.x % 32;
    if (i >= T) return;
    const float* qi = q + ((long)h * T + i) * D;
    const float* kh = k + (long)h * T * D;
    const float* vh = v + (long)h * T * D;
    float qr[MAX_PER_LANE], acc[MAX_PER_LANE];
    for (int p = 0; p < MAX_PER_LANE; p++) {
        int d = lane + 32 * p;
        qr[p] = d < D ? qi[d] * scale : 0.0f;
        acc[p] = 0.0f;
    }
    float m = (-__int_as_float(0x7f800000)), s = 0.0f;
    for (int j = 0; j <= i; j++) {
        const float* kj = kh + (long)j * D;
        float dot = 0.0f;
        for (int p = 0; p < MAX_PER_LANE; p++) { int d = lane + 32 * p; if (d < D) dot += qr[p] * kj[d]; }
        dot = warp_sum_a(dot);
        float mNew = fmaxf(m, dot);
        float correction = __expf(m - mNew), w = __expf(dot - mNew);
        s = s * correction + w;
        const float* vj = vh + (long)j * D;
        for (int p = 0; p < MAX_PER_LANE; p++) { int d = lane + 32 * p; if (d < D) acc[p] = acc[p] * correction + w * vj[d]; }
        m = mNew;
    }
    float* oi = out + ((long)h * T + i) * D;
    for (int p = 0; p < MAX_PER_LANE; p++) { int d = lane + 32 * p; if (d < D) oi[d] = acc[p] / s; }
    if (lane == 0) lse[(long)h * T + i] = m + __logf(s);
}

// delta_i = dO_i · O_i, needed by every key's gradient.
extern "C" __global__ void attention_backward_delta(const float* __restrict__ out, const float* __restrict__ dout,
                                                    float* __restrict__ delta, long rows, int D) {
    long r = blockIdx.x * (long)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    float acc = 0.0f;
    for (int d = lane; d < D; d += 32) acc += out[r * D + d] * dout[r * D + d];
    acc = warp_sum_a(acc);
    if (lane == 0) delta[r] = acc;
}

// One warp per key row j: dV_j = Σ_{i≥j} P_ij dO_i, dK_j = Σ_i dS_ij Q_i·scale, and
// dQ_i += dS_ij K_j·scale with atomics (dq zeroed by the caller), dS_ij = P_ij (dO_i·V_j − delta_i).
extern "C" __global__ void attention_backward(const float* __restrict__ q, const float* __restrict__ k,
                                              const float* __restrict__ v, const float* __restrict__ lse,
                                              const float* __restrict__ delta, const float* __restrict__ dout,
                                              float* dq, float* __restrict__ dk, float* __restrict__ dv,
                                              int heads, int T, int D, float scale) {
    int j = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int h = blockIdx.y;
    int lane = threadIdx.x % 32;
    if (j >= T) return;
    const float* kj = k + ((long)h * T + j) * D;
    const float* vj = v + ((long)h * T + j) * D;
    float kr[MAX_PER_LANE], vr[MAX_PER_LANE], dkAcc[MAX_PER_LANE], dvAcc[MAX_PER_LANE];
    for (int p = 0; p < MAX_PER_LANE; p++) {
        int d = lane + 32 * p;
        kr[p] = d < D ? kj[d] : 0.0f; vr[p] = d < D ? vj[d] : 0.0f;
        dkAcc[p] = 0.0f; dvAcc[p] = 0.0f;
    }
    for (int i = j; i < T; i++) {
        const float* qi = q + ((long)h * T + i) * D;
        const float* gi = dout + ((long)h * T + i) * D;
        float s = 0.0f, dp = 0.0f;
        for (int p = 0; p < MAX_PER_LANE; p++) { int d = lane + 32 * p; if (d < D) { s += qi[d] * kr[p]; dp += gi[d] * vr[p]; } }
        s = warp_sum_a(s); dp = warp_sum_a(dp);
        float prob = __expf(s * scale - lse[(long)h * T + i]);
        float ds = prob * (dp - delta[(long)h * T + i]) * scale;
        float* dqi = dq + ((long)h * T + i) * D;
        for (int p = 0; p < MAX_PER_LANE; p++) {
            int d = lane + 32 * p;
            if (d < D) {
                dvAcc[p] += prob * gi[d];
                dkAcc[p] += ds * qi[d];
                atomicAdd(dqi + d, ds * kr[p]);
            }
        }
    }
    for (int p = 0; p < MAX_PER_LANE; p++) {
        int d = lane + 32 * p;
        if (d < D) { dk[((long)h * T + j) * D + d] = dkAcc[p]; dv[((long)h * T + j) * D + d] = dvAcc[p]; }
    }
}
"""#
}
