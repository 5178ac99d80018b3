import CKernelMath
// A register-tiled matrix multiply for the small blocks inside fused kernels (attention), run by
// one thread on data that sits in L1/L2. The big GEMMs go to oneDNN/OpenBLAS (GEMM.swift); these
// blocks are too small, and too many, to pay for a library call each.

/// C[i, j] (+)= Σ_p A(i, p) · B[p·ldb + j] for i < m, j < n, p < k, where A(i, p) = a[i·rowStride + p·colStride].
/// A's strides let the same kernel read A or Aᵀ (dK = dSᵀ·Q); B is row-major (contiguous along j).
/// Tiles of 4 rows × 16 columns keep 8 AVX2 accumulators in flight, enough to hide FMA latency.
func smallGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, rowStride: Int, colStride: Int,
               b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    var j = 0
    while j < n {
        let width = min(16, n - j)
        var i = 0
        while i + 4 <= m {
            let a0 = a + i * rowStride, a1 = a0 + rowStride, a2 = a1 + rowStride, a3 = a2 + rowStride
            var c0 = F16x(repeating: 0), c1 = c0, c2 = c0, c3 = c0
            var bp = b + j, ap = 0
            if width == 16 {
                for _ in 0..<k {
                    let bv = load16(bp)
                    c0 = c0.addingProduct(F16x(repeating: a0[ap]), bv)
                    c1 = c1.addingProduct(F16x(repeating: a1[ap]), bv)
                    c2 = c2.addingProduct(F16x(repeating: a2[ap]), bv)
                    c3 = c3.addingProduct(F16x(repeating: a3[ap]), bv)
                    bp += ldb; ap += colStride
                }
            } else {
                for _ in 0..<k {
                    let bv = loadPartial(bp, width)
                    c0 = c0.addingProduct(F16x(repeating: a0[ap]), bv)
                    c1 = c1.addingProduct(F16x(repeating: a1[ap]), bv)
                    c2 = c2.addingProduct(F16x(repeating: a2[ap]), bv)
                    c3 = c3.addingProduct(F16x(repeating: a3[ap]), bv)
                    bp += ldb; ap += colStride
                }
            }
            let cp = c + i * ldc + j
            storeTile(c0, cp, width, accumulate)
            storeTile(c1, cp + ldc, width, accumulate)
            storeTile(c2, cp + 2 * ldc, width, accumulate)
            storeTile(c3, cp + 3 * ldc, width, accumulate)
            i += 4
        }
        while i < m {
            let ar = a + i * rowStride
            var acc = F16x(repeating: 0), bp = b + j, ap = 0
            for _ in 0..<k {
                acc = acc.addingProduct(F16x(repeating: ar[ap]), width == 16 ? load16(bp) : loadPartial(bp, width))
                bp += ldb; ap += colStride
            }
            storeTile(acc, c + i * ldc + j, width, accumulate)
            i += 1
        }
        j += 16
    }
}

@inline(__always) private func storeTile(_ v: F16x, _ p: UnsafeMutablePointer<Float>, _ width: Int, _ accumulate: Bool) {
    if width == 16 {
        store16(accumulate ? v + load16(p) : v, p)
    } else {
        storePartial(accumulate ? v + loadPartial(p, width) : v, p, width)
    }
}

/// dst[c·rows + r] = src[r·ld + c]: an r×c block of a row-major matrix, transposed (8×8 register
/// tiles in C; a plain loop writes one cache line per element and cost 3× as much here).
@inline(__always)
func transposeBlock(_ src: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, _ dst: UnsafeMutablePointer<Float>) {
    nd_transpose(src, rows, cols, ld, dst)
}
