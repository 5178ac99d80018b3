import CDNNLShim
import COpenBLAS
import Foundation

/// Matrix multiply through oneDNN's matmul primitive. Primitives are created once per
/// (shape, layout, dtype) and cached: creating one costs far more than a small GEMM.
public final class OneDNNMatmul: @unchecked Sendable {
    public enum ElementType: Int32, Sendable { case float32 = 0, bfloat16 = 1 }

    struct Key: Hashable {
        var type: ElementType, batch: Int, m: Int, n: Int, k: Int
        var transA: Bool, transB: Bool, bias: Bool, accumulate: Bool
    }

    private var cache: [Key: OpaquePointer] = [:]
    private let lock = NSLock()

    public init() {}

    deinit { for p in cache.values { nd_matmul_destroy(p) } }

    /// oneDNN version string, e.g. "2.6.3".
    public static var version: String {
        let v = Int(nd_dnnl_version())
        return "\(v / 10000).\(v / 100 % 100).\(v % 100)"
    }

    private func primitive(_ key: Key) -> OpaquePointer {
        lock.lock(); defer { lock.unlock() }
        if let p = cache[key] { return p }
        var err = [CChar](repeating: 0, count: 256)
        guard let p = nd_matmul_create(key.type.rawValue, Int64(key.batch), Int64(key.m), Int64(key.n), Int64(key.k),
                                       key.transA ? 1 : 0, key.transB ? 1 : 0, key.bias ? 1 : 0, key.accumulate ? 1 : 0,
                                       &err, Int32(err.count)) else {
            fatalError(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))  // only for shapes the engine already validated
        }
        cache[key] = p
        return p
    }

    /// Whether this CPU has a bf16 matmul in oneDNN (AVX-512 bf16, AMX, or oneDNN's AVX-512
    /// emulation), and oneDNN's message when it has none ("could not create a primitive").
    public lazy var bf16Support: (native: Bool, detail: String) = {
        var err = [CChar](repeating: 0, count: 256)
        guard let p = nd_matmul_create(ElementType.bfloat16.rawValue, 1, 64, 64, 64, 0, 0, 0, 0, &err, Int32(err.count)) else {
            return (false, String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { nd_matmul_destroy(p) }
        return (true, String(cString: nd_matmul_impl_name(p)))
    }()

    /// C[b] = op(A[b]) · op(B[b]) (+ bias) (+ C when accumulate); all row-major.
    public func run(_ type: ElementType = .float32, a: UnsafeRawPointer, b: UnsafeRawPointer, bias: UnsafePointer<Float>?,
                    c: UnsafeMutablePointer<Float>, batch: Int = 1, m: Int, n: Int, k: Int,
                    transA: Bool = false, transB: Bool = false, accumulate: Bool = false) {
        if m == 0 || n == 0 { return }
        if k == 0 {   // an empty product: C = bias (+ C)
            if !accumulate { c.update(repeating: 0, count: batch * m * n) }
            if let bias { for row in 0..<(batch * m) { for j in 0..<n { c[row * n + j] += bias[j] } } }
            return
        }
        let p = primitive(Key(type: type, batch: batch, m: m, n: n, k: k, transA: transA, transB: transB,
                              bias: bias != nil, accumulate: accumulate))
        let rc = nd_matmul_execute(p, a, b, bias, c)
        precondition(rc == 0, "oneDNN matmul failed")
    }

    /// The kernel oneDNN picked for a shape (e.g. "brg:avx512_core").
    public func implementation(_ type: ElementType = .float32, m: Int, n: Int, k: Int, transA: Bool = false,
                               transB: Bool = false) -> String {
        String(cString: nd_matmul_impl_name(primitive(Key(type: type, batch: 1, m: m, n: n, k: k, transA: transA,
                                                          transB: transB, bias: false, accumulate: false))))
    }
}

/// fp32 GEMM through OpenBLAS's cblas_sgemm (batched by a loop). Faster than oneDNN's
/// non-AVX-512 fallback (gemm:jit) on AVX2-only CPUs; oneDNN keeps bf16.
public final class OpenBLASGemm: @unchecked Sendable {
    public init(threads: Int) { openblas_set_num_threads(Int32(threads)) }

    /// OpenBLAS's build configuration and kernel, e.g. "OpenBLAS 0.3.21 … Zen".
    public static var kernel: String {
        "OpenBLAS \(String(cString: openblas_get_config()).split(separator: " ").dropFirst().first ?? "") (\(String(cString: openblas_get_corename())))"
    }

    public func run(a: UnsafeRawPointer, b: UnsafeRawPointer, bias: UnsafePointer<Float>?, c: UnsafeMutablePointer<Float>,
                    batch: Int = 1, m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, accumulate: Bool = false) {
        if m == 0 || n == 0 { return }
        var beta: Float = accumulate ? 1 : 0
        if let bias {
            for row in 0..<(batch * m) {
                let cr = c + row * n
                if accumulate { for j in 0..<n { cr[j] += bias[j] } } else { cr.update(from: bias, count: n) }
            }
            beta = 1
        }
        let af = a.assumingMemoryBound(to: Float.self), bf = b.assumingMemoryBound(to: Float.self)
        for i in 0..<batch {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), 1, af + i * m * k, Int32(transA ? m : k),
                        bf + i * k * n, Int32(transB ? k : n), beta, c + i * m * n, Int32(n))
        }
    }
}
