import Foundation
import NanoEngine

// Pointwise ops, casts, random fills, permutes, slice copies, AdamW and GEMMs on the GPU
// (kernels in Kernels/EnginePointwise.swift; GEMMs through cuBLASLt).

extension CUDABackend {
    private static let unit = "engine_pointwise.cu"

    /// dtype code shared with the kernels' nd_load/nd_store.
    static func code(_ t: DType) -> Int32 {
        switch t { case .float32: 0; case .bfloat16: 1; case .float16: 2; case .int32: 3; case .uint16: 4 }
    }

    /// The kernels' NdStrides struct: rank, padding, then shape and three operands' strides (8 each).
    static func strides(shape: [Int], _ operands: [[Int]]) -> CUDAContext.Argument {
        precondition(shape.count <= 8, "CUDABackend: tensors of rank \(shape.count) > 8 are not supported")
        let head: [Int32] = [Int32(shape.count), 0]
        var body = [Int64](repeating: 0, count: 32)
        for (a, n) in shape.enumerated() { body[a] = Int64(n) }
        for (o, s) in operands.prefix(3).enumerated() { for (a, v) in s.enumerated() { body[8 * (o + 1) + a] = Int64(v) } }
        var bytes: [UInt8] = []
        head.withUnsafeBytes { bytes += $0 }
        body.withUnsafeBytes { bytes += $0 }
        return .bytes(bytes)
    }

    /// Element strides of an operand of shape `inShape` broadcast to `out` (0 on broadcast axes).
    static func broadcastStrides(_ inShape: [Int], to out: [Int]) -> [Int] {
        let padded = [Int](repeating: 1, count: out.count - inShape.count) + inShape
        let s = Shape.strides(padded)
        return (0..<out.count).map { padded[$0] == 1 && out[$0] != 1 ? 0 : s[$0] }
    }

    public func fill(_ t: Tensor, value: Float) {
        let n = Int64(t.count)
        switch t.dtype {
        case .float32: launch(Self.unit, "nd_fill_f32", grid: elementGrid(t.count), block: (256, 1, 1), [arg(t), .float(value), .int64(n)])
        case .int32: launch(Self.unit, "nd_fill_i32", grid: elementGrid(t.count), block: (256, 1, 1), [arg(t), .int32(Int32(value)), .int64(n)])
        case .bfloat16, .float16, .uint16:
            let bits: UInt16 = t.dtype == .bfloat16 ? BFloat16.fromFloat(value) : t.dtype == .float16 ? Float16(value).bitPattern : UInt16(value)
            launch(Self.unit, "nd_fill_b16", grid: elementGrid(t.count), block: (256, 1, 1), [arg(t), .int32(Int32(bits)), .int64(n)])
        }
    }

    public func cast(_ src: Tensor, to dst: Tensor) {
        if src.dtype == dst.dtype { copy(src, to: dst); return }
        launch(Self.unit, "nd_cast", grid: elementGrid(src.count), block: (256, 1, 1),
               [arg(src), .int32(Self.code(src.dtype)), arg(dst), .int32(Self.code(dst.dtype)), .int64(Int64(src.count))])
    }

    public func random(_ t: Tensor, _ distribution: RandomDistribution, seed: UInt64, offset: UInt64) {
        let (code, p): (Int32, [Float]) = switch distribution {
        case let .uniform(low, high): (0, [low, high, 0, 0])
        case let .normal(mean, std): (1, [mean, std, 0, 0])
        case let .truncatedNormal(mean, std, low, high): (2, [mean, std, low, high])
        case let .bernoulli(q): (3, [q, 0, 0, 0])
        }
        launch(Self.unit, "nd_random", grid: elementGrid(t.count), block: (256, 1, 1),
               [arg(t), .int64(Int64(t.count)), .int32(code), .float(p[0]), .float(p[1]), .float(p[2]), .float(p[3]),
                .int64(Int64(bitPattern: seed)), .int64(Int64(bitPattern: offset))])
    }

    /// Op code and affine coefficients of a unary op (the kernels' order).
    private static func unaryCode(_ op: UnaryOp) -> (Int32, Float, Float) {
        switch op {
        case .gelu: (0, 0, 0)
        case .relu: (1, 0, 0)
        case .silu: (2, 0, 0)
        case .softplus: (3, 0, 0)
        case .exp: (4, 0, 0)
        case .log: (5, 0, 0)
        case .tanh: (6, 0, 0)
        case .sigmoid: (7, 0, 0)
        case .square: (8, 0, 0)
        case .sqrt: (9, 0, 0)
        case .neg: (10, 0, 0)
        case let .affine(a, b): (11, a, b)
        }
    }

    public func unary(_ op: UnaryOp, _ x: Tensor, _ y: Tensor) {
        let (code, a, b) = Self.unaryCode(op)
        launch(Self.unit, "nd_unary", grid: elementGrid(x.count), block: (256, 1, 1),
               [.int32(code), .float(a), .float(b), arg(x), arg(y), .int64(Int64(x.count))])
    }

    public func unaryBackward(_ op: UnaryOp, x: Tensor, dy: Tensor, dx: Tensor) {
        let (code, a, _) = Self.unaryCode(op)
        launch(Self.unit, "nd_unary_backward", grid: elementGrid(x.count), block: (256, 1, 1),
               [.int32(code), .float(a), arg(x), arg(dy), arg(dx), .int64(Int64(x.count))])
    }

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, _ out: Tensor) {
        let code: Int32 = switch op { case .add: 0; case .sub: 1; case .mul: 2; case .div: 3 }
        let plan = Self.strides(shape: out.shape, [Self.broadcastStrides(a.shape, to: out.shape), Self.broadcastStrides(b.shape, to: out.shape)])
        launch(Self.unit, "nd_binary", grid: elementGrid(out.count), block: (256, 1, 1),
               [.int32(code), arg(a), arg(b), arg(out), .int64(Int64(out.count)), plan])
    }

    public func select(_ cond: Tensor, _ a: Tensor, _ b: Tensor, _ out: Tensor) {
        let plan = Self.strides(shape: out.shape, [cond, a, b].map { Self.broadcastStrides($0.shape, to: out.shape) })
        launch(Self.unit, "nd_select", grid: elementGrid(out.count), block: (256, 1, 1),
               [arg(cond), arg(a), arg(b), arg(out), .int64(Int64(out.count)), plan])
    }

    public func permute(_ x: Tensor, _ perm: [Int], _ out: Tensor) {
        let inStrides = Shape.strides(x.shape)
        let plan = Self.strides(shape: perm.map { x.shape[$0] }, [perm.map { inStrides[$0] }])
        launch(Self.unit, "nd_permute", grid: elementGrid(out.count), block: (256, 1, 1),
               [arg(x), arg(out), .int32(Int32(x.dtype.size)), .int64(Int64(out.count)), plan])
    }

    public func copySlices(_ src: Tensor, _ srcView: AxisView, srcStart: Int, _ dst: Tensor, _ dstView: AxisView,
                           dstStart: Int, length: Int) {
        let total = srcView.outer * length * srcView.inner
        guard total > 0 else { return }
        launch(Self.unit, "nd_copy_slices", grid: elementGrid(total), block: (256, 1, 1),
               [arg(src), arg(dst), .int64(Int64(srcView.outer)), .int64(Int64(length)), .int64(Int64(srcView.inner)),
                .int64(Int64(srcView.axis)), .int64(Int64(srcStart)), .int64(Int64(dstView.axis)), .int64(Int64(dstStart)),
                .int32(Int32(src.dtype.size))])
    }

    public func adamW(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, _ h: AdamWStep) {
        // Bias corrections on the host, as the CPU kernel computes them.
        let c1 = 1 - Foundation.pow(h.beta1, Float(h.step)), c2 = 1 - Foundation.pow(h.beta2, Float(h.step))
        launch(Self.unit, "nd_adamw", grid: elementGrid(param.count), block: (256, 1, 1),
               [arg(param), arg(grad), arg(m), arg(v), .int64(Int64(param.count)), .float(h.beta1), .float(h.beta2), .float(h.eps),
                .float(1 - h.learningRate * h.weightDecay), .float(h.learningRate / c1), .float(1 / c2)])
    }

    /// Every parameter's AdamW update in one launch: a table of (p, g, m, v, n, first chunk) per
    /// tensor goes to the device, and each block updates one 4096-element chunk of one tensor.
    /// While a graph is recorded the table could not be uploaded as a recorded copy, so it launches
    /// per tensor then.
    public func adamW(_ tensors: [AdamWTensors], _ h: AdamWStep) {
        if capture != nil || tensors.count < 2 {
            for t in tensors { adamW(param: t.param, grad: t.grad, m: t.m, v: t.v, h) }
            return
        }
        let chunk = 4096
        var table: [Int64] = [], chunks = 0
        for t in tensors {
            table += [Int64(bitPattern: address(t.param)), Int64(bitPattern: address(t.grad)), Int64(bitPattern: address(t.m)),
                      Int64(bitPattern: address(t.v)), Int64(t.param.count), Int64(chunks)]
            chunks += (t.param.count + chunk - 1) / chunk
        }
        guard chunks > 0 else { return }
        let bytes = table.count * 8
        let device = scratch(bytes: bytes)
        defer { releaseScratch(device, bytes: bytes) }   // one stream: later users run after this kernel
        do { try gpu.upload(table, to: device) } catch { fatal("uploading the AdamW table", error) }
        let c1 = 1 - Foundation.pow(h.beta1, Float(h.step)), c2 = 1 - Foundation.pow(h.beta2, Float(h.step))
        launch(Self.unit, "nd_adamw_multi", grid: (min(chunks, 65_535), 1, 1), block: (256, 1, 1),
               [.pointer(device), .int32(Int32(tensors.count)), .int64(Int64(chunks)), .float(h.beta1), .float(h.beta2), .float(h.eps),
                .float(1 - h.learningRate * h.weightDecay), .float(h.learningRate / c1), .float(1 / c2)])
    }

    /// AdamW reading its hyperparameters and the clipping factor from device memory (recorded
    /// graphs replay it with each step's values): one launch per tensor, cheap inside a graph.
    public func adamW(_ tensors: [AdamWTensors], hyper: Tensor, gradScale: Tensor) {
        for t in tensors {
            launch(Self.unit, "nd_adamw_device", grid: elementGrid(t.param.count), block: (256, 1, 1),
                   [arg(t.param), arg(t.grad), arg(t.m), arg(t.v), .int64(Int64(t.param.count)), arg(hyper), arg(gradScale)])
        }
    }

    // MARK: GEMM

    public func matmul(_ a: Tensor, _ b: Tensor, bias: Tensor?, _ out: Tensor, batch: Int, m: Int, n: Int, k: Int,
                       transA: Bool, transB: Bool, accumulate: Bool) {
        let precision: CUBLASLt.Precision = switch a.dtype {
        case .bfloat16: .bfloat16
        case .float16: .float16
        default: tf32 ? .tf32 : .float32
        }
        // Empty products, as the CPU: nothing to write, or zeros (k = 0) unless accumulating.
        guard batch > 0, m > 0, n > 0 else { return }
        guard k > 0 else {
            if !accumulate { zero(out) }
            if let bias { binary(.add, out, bias, out) }
            return
        }
        var (batch, m, sharedB) = (batch, m, batch > 1 && b.count == k * n)
        if sharedB && !transA { (m, batch, sharedB) = (batch * m, 1, false) }   // shared weights: one GEMM over all rows
        do {
            try blas.matmul(a: address(a), b: address(b), c: address(out), bias: bias.map(address), m: m, n: n, k: k,
                            transA: transA, transB: transB, batch: batch, sharedB: sharedB, precision: precision,
                            epilogue: bias == nil ? .none : .bias, accumulate: accumulate)
        } catch {
            fatal("cuBLASLt matmul \(m)×\(n)×\(k) (batch \(batch), \(precision))", error)
        }
    }
}
