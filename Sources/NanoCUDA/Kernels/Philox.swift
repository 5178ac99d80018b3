// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) in device
// code, word for word NanoEngine's `Philox.block`, so GPU random fills and dropout masks draw the
// CPU's stream. Pasted into each kernel unit that draws (a unit is its own translation unit).

extension CUDAKernels {
    static let philox = #"""
// Block `counter` of the stream `seed`: four 32-bit words.
__device__ __forceinline__ uint4 nd_philox(unsigned long long counter, unsigned long long seed) {
    unsigned int c0 = (unsigned int)counter, c1 = (unsigned int)(counter >> 32), c2 = 0, c3 = 0;
    unsigned int k0 = (unsigned int)seed, k1 = (unsigned int)(seed >> 32);
#pragma unroll
    for (int r = 0; r < 10; r++) {
        unsigned long long p0 = 0xD2511F53ull * c0, p1 = 0xCD9E8D57ull * c2;
        unsigned int n0 = (unsigned int)(p1 >> 32) ^ c1 ^ k0, n1 = (unsigned int)p1;
        unsigned int n2 = (unsigned int)(p0 >> 32) ^ c3 ^ k1, n3 = (unsigned int)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    return make_uint4(c0, c1, c2, c3);
}
__device__ __forceinline__ unsigned int nd_philox_word(uint4 b, int w) { return w == 0 ? b.x : w == 1 ? b.y : w == 2 ? b.z : b.w; }
"""#
}
