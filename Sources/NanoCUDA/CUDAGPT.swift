import Foundation

/// The dense GPT (GPT-2: pre-LayerNorm blocks, tanh-GELU MLP 4× wide, biases, LM head tied to
/// the token embedding) trained on one GPU in fp32, written out layer by layer as llm.c does:
/// the NVRTC kernels for everything but GEMMs, cuBLASLt for those, AdamW over all tensors in
/// one launch. The first end-to-end GPU path; `nanodecoder cuda train-check` runs it beside the
/// CPU model on the same batches. The CUDA `Backend` (every engine op on the GPU) will replace it.
///
/// Written without a GPU; it has not run yet.
public final class CUDAGPT {
    public struct Shape: Sendable {
        public var vocab, layers, heads, width, block: Int
        public init(vocab: Int, layers: Int, heads: Int, width: Int, block: Int) {
            (self.vocab, self.layers, self.heads, self.width, self.block) = (vocab, layers, heads, width, block)
        }
    }

    public let shape: Shape
    private let gpu: CUDAContext, blas: CUBLASLt, modules: [String: CUDAContext.Module]
    /// Parameter names (the CPU model's) with their element counts, in optimizer order.
    public let parameters: [(name: String, count: Int)]
    private var weights: [String: CUDAContext.DevicePointer] = [:], grads: [String: CUDAContext.DevicePointer] = [:]
    private var owned: [CUDAContext.DevicePointer] = []
    private var adamTable: CUDAContext.DevicePointer = 0, normBuffer: CUDAContext.DevicePointer = 0
    private var activations: Activations? = nil
    public private(set) var step = 0

    /// The parameter names and element counts a model of `shape` has, as the CPU DenseGPT names them.
    public static func parameterLayout(_ s: Shape) -> [(name: String, count: Int)] {
        let c = s.width
        var out: [(String, Int)] = [("tokenEmbedding.weight", s.vocab * c), ("positionEmbedding.weight", s.block * c)]
        for l in 0..<s.layers {
            let p = "blocks.\(l)."
            out += [(p + "norm1.weight", c), (p + "norm1.bias", c),
                    (p + "attention.qkv.weight", 3 * c * c), (p + "attention.qkv.bias", 3 * c),
                    (p + "attention.proj.weight", c * c), (p + "attention.proj.bias", c),
                    (p + "norm2.weight", c), (p + "norm2.bias", c),
                    (p + "mlp.fc.weight", 4 * c * c), (p + "mlp.fc.bias", 4 * c),
                    (p + "mlp.proj.weight", 4 * c * c), (p + "mlp.proj.bias", c)]
        }
        return out + [("finalNorm.weight", c), ("finalNorm.bias", c)]
    }

    /// Uploads `values` (every name of `parameterLayout`, row-major as the CPU model stores them).
    /// `decayed`: the names AdamW's weight decay applies to.
    public init(context: CUDAContext, blas: CUBLASLt, modules: [String: CUDAContext.Module], shape: Shape,
                values: [String: [Float]], decayed: Set<String>, weightDecay: Float) throws {
        (gpu, self.blas, self.modules, self.shape) = (context, blas, modules, shape)
        parameters = Self.parameterLayout(shape)
        guard shape.width % shape.heads == 0, shape.width / shape.heads <= 128 else {
            throw CUDADriverError(call: "CUDAGPT", code: -1, name: "head size \(shape.width)/\(shape.heads) must divide evenly and be ≤ 128")
        }
        // AdamW state: table entries { param, grad, m, v, n, weightDecay } (48 bytes each).
        var table: [UInt8] = []
        for (name, count) in parameters {
            guard let v = values[name], v.count == count else {
                throw CUDADriverError(call: "CUDAGPT", code: -1, name: "parameter \(name): expected \(count) values, got \(values[name]?.count ?? 0)")
            }
            let w = try keep(try gpu.upload(v)), g = try keep(try gpu.allocate(count * 4))
            let m = try keep(try gpu.allocate(count * 4)), s = try keep(try gpu.allocate(count * 4))
            try gpu.zero(m, bytes: count * 4); try gpu.zero(s, bytes: count * 4)
            (weights[name], grads[name]) = (w, g)
            var entry = [UInt8](repeating: 0, count: 48)
            entry.withUnsafeMutableBytes { raw in
                for (k, p) in [w, g, m, s].enumerated() { raw.storeBytes(of: p, toByteOffset: 8 * k, as: UInt64.self) }
                raw.storeBytes(of: Int64(count), toByteOffset: 32, as: Int64.self)
                raw.storeBytes(of: decayed.contains(name) ? weightDecay : 0, toByteOffset: 40, as: Float.self)
            }
            table += entry
        }
        adamTable = try keep(try gpu.upload(table))
        normBuffer = try keep(try gpu.allocate(4))
    }

    deinit { (owned + (activations?.buffers ?? [])).forEach(gpu.release) }

    private func keep(_ p: CUDAContext.DevicePointer) throws -> CUDAContext.DevicePointer { owned.append(p); return p }

    /// A parameter's current values.
    public func values(of name: String) throws -> [Float] {
        guard let p = weights[name], let n = parameters.first(where: { $0.name == name })?.count else {
            throw CUDADriverError(call: "CUDAGPT.values", code: -1, name: "no parameter \(name)")
        }
        return try gpu.download(p, count: n)
    }

    /// Everything forward keeps for backward, for one batch shape.
    private struct Activations {
        let batch: Int, time: Int
        /// Every buffer below, released when the batch shape changes.
        var buffers: [CUDAContext.DevicePointer] = []
        var tokens: CUDAContext.DevicePointer = 0, targets: CUDAContext.DevicePointer = 0
        var xs: [CUDAContext.DevicePointer] = []          // block inputs, then the last block's output: layers + 1
        var h1: [CUDAContext.DevicePointer] = [], mean1: [CUDAContext.DevicePointer] = [], rstd1: [CUDAContext.DevicePointer] = []
        var q: [CUDAContext.DevicePointer] = [], k: [CUDAContext.DevicePointer] = [], v: [CUDAContext.DevicePointer] = []
        var att: [CUDAContext.DevicePointer] = [], lse: [CUDAContext.DevicePointer] = [], y: [CUDAContext.DevicePointer] = []
        var x1: [CUDAContext.DevicePointer] = [], h2: [CUDAContext.DevicePointer] = []
        var mean2: [CUDAContext.DevicePointer] = [], rstd2: [CUDAContext.DevicePointer] = []
        var pre: [CUDAContext.DevicePointer] = [], act: [CUDAContext.DevicePointer] = []
        var hf: CUDAContext.DevicePointer = 0, meanF: CUDAContext.DevicePointer = 0, rstdF: CUDAContext.DevicePointer = 0
        var logits: CUDAContext.DevicePointer = 0, losses: CUDAContext.DevicePointer = 0, lseCE: CUDAContext.DevicePointer = 0
        // Scratch.
        var qkv: CUDAContext.DevicePointer = 0, tmp: CUDAContext.DevicePointer = 0, dlogits: CUDAContext.DevicePointer = 0
        var dx: CUDAContext.DevicePointer = 0, dx1: CUDAContext.DevicePointer = 0, dh: CUDAContext.DevicePointer = 0
        var dtmp: CUDAContext.DevicePointer = 0, dact: CUDAContext.DevicePointer = 0, dpre: CUDAContext.DevicePointer = 0
        var dy: CUDAContext.DevicePointer = 0, dout: CUDAContext.DevicePointer = 0, delta: CUDAContext.DevicePointer = 0
        var dq: CUDAContext.DevicePointer = 0, dk: CUDAContext.DevicePointer = 0, dv: CUDAContext.DevicePointer = 0
        var dqkv: CUDAContext.DevicePointer = 0
    }

    private func allocateActivations(batch b: Int, time t: Int) throws -> Activations {
        let (n, c, l, v) = (b * t, shape.width, shape.layers, shape.vocab)
        var a = Activations(batch: b, time: t)
        var buffers: [CUDAContext.DevicePointer] = []
        var complete = false
        defer { if !complete { buffers.forEach(gpu.release) } }
        func f(_ count: Int) throws -> CUDAContext.DevicePointer {
            let p = try gpu.allocate(count * 4)
            buffers.append(p)
            return p
        }
        a.tokens = try f(n); a.targets = try f(n)
        a.xs = try (0...l).map { _ in try f(n * c) }
        for _ in 0..<l {
            a.h1.append(try f(n * c)); a.mean1.append(try f(n)); a.rstd1.append(try f(n))
            a.q.append(try f(n * c)); a.k.append(try f(n * c)); a.v.append(try f(n * c))
            a.att.append(try f(n * c)); a.lse.append(try f(b * shape.heads * t)); a.y.append(try f(n * c))
            a.x1.append(try f(n * c)); a.h2.append(try f(n * c)); a.mean2.append(try f(n)); a.rstd2.append(try f(n))
            a.pre.append(try f(n * 4 * c)); a.act.append(try f(n * 4 * c))
        }
        a.hf = try f(n * c); a.meanF = try f(n); a.rstdF = try f(n)
        a.logits = try f(n * v); a.losses = try f(n); a.lseCE = try f(n)
        a.qkv = try f(n * 3 * c); a.tmp = try f(n * c); a.dlogits = try f(n * v)
        a.dx = try f(n * c); a.dx1 = try f(n * c); a.dh = try f(n * c); a.dtmp = try f(n * c)
        a.dact = try f(n * 4 * c); a.dpre = try f(n * 4 * c); a.dy = try f(n * c); a.dout = try f(n * c)
        a.delta = try f(b * shape.heads * t); a.dq = try f(n * c); a.dk = try f(n * c); a.dv = try f(n * c); a.dqkv = try f(n * 3 * c)
        a.buffers = buffers
        complete = true
        return a
    }

    private func launch(_ module: String, _ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int) = CUDAContext.blockOf256,
                        _ args: [CUDAContext.Argument]) throws {
        try gpu.launch(modules[module]!, kernel, grid: grid, block: block, args)
    }

    private func w(_ name: String) -> CUDAContext.Argument { .pointer(weights[name]!) }
    private func g(_ name: String) -> CUDAContext.Argument { .pointer(grads[name]!) }

    private func add(_ a: CUDAContext.DevicePointer, _ b: CUDAContext.DevicePointer, _ out: CUDAContext.DevicePointer, _ n: Int, bCount: Int? = nil) throws {
        try launch("elementwise.cu", "add", grid: CUDAContext.gridStride(n),
                   [.pointer(a), .pointer(b), .pointer(out), .int64(Int64(n)), .int64(Int64(bCount ?? n))])
    }

    private func layerNorm(_ x: CUDAContext.DevicePointer, _ prefix: String, _ y: CUDAContext.DevicePointer, _ mean: CUDAContext.DevicePointer,
                           _ rstd: CUDAContext.DevicePointer, rows: Int) throws {
        try launch("rows.cu", "layernorm_forward", grid: CUDAContext.warpPerRow(rows),
                   [.pointer(x), .pointer(0), .pointer(0), w(prefix + ".weight"), w(prefix + ".bias"), .pointer(y), .pointer(mean),
                    .pointer(rstd), .int64(Int64(rows)), .int32(Int32(shape.width)), .float(1e-5)])
    }

    private func layerNormBackward(_ x: CUDAContext.DevicePointer, _ prefix: String, _ mean: CUDAContext.DevicePointer,
                                   _ rstd: CUDAContext.DevicePointer, dy: CUDAContext.DevicePointer, dx: CUDAContext.DevicePointer, rows: Int) throws {
        try launch("rows.cu", "layernorm_backward", grid: CUDAContext.warpPerRow(rows),
                   [.pointer(x), w(prefix + ".weight"), .pointer(mean), .pointer(rstd), .pointer(dy), .pointer(dx),
                    g(prefix + ".weight"), g(prefix + ".bias"), .int64(Int64(rows)), .int32(Int32(shape.width))])
    }

    private func columnSum(_ x: CUDAContext.DevicePointer, into out: CUDAContext.DevicePointer, rows: Int, cols: Int) throws {
        try launch("elementwise.cu", "column_sum", grid: ((cols + 255) / 256, 1, 1), [.pointer(x), .pointer(out), .int64(Int64(rows)), .int32(Int32(cols))])
    }

    private func heads(rows: CUDAContext.DevicePointer, heads: CUDAContext.DevicePointer, parts: Int, which: Int, toHeads: Bool, _ a: Activations) throws {
        let d = shape.width / shape.heads
        try launch("elementwise.cu", "heads_permute", grid: CUDAContext.gridStride(a.batch * a.time * shape.width),
                   [.pointer(rows), .pointer(heads), .int32(Int32(a.batch)), .int32(Int32(a.time)), .int32(Int32(shape.heads)),
                    .int32(Int32(d)), .int32(Int32(parts)), .int32(Int32(which)), .int32(toHeads ? 1 : 0)])
    }

    /// One training step on tokens/targets [batch, time] (row-major): forward, backward, gradient
    /// clipping to `maxNorm` (0: none), AdamW. Returns the mean cross-entropy and the gradient norm
    /// before clipping.
    public func trainStep(tokens: [Int32], targets: [Int32], batch: Int, learningRate: Float, maxNorm: Float,
                          beta1: Float, beta2: Float, eps: Float) throws -> (loss: Float, gradNorm: Float) {
        let t = tokens.count / max(batch, 1)
        guard batch > 0, tokens.count == batch * t, targets.count == tokens.count, t <= shape.block else {
            throw CUDADriverError(call: "CUDAGPT.trainStep", code: -1, name: "tokens/targets must be [batch, T] with T ≤ \(shape.block)")
        }
        if activations?.batch != batch || activations?.time != t {
            activations?.buffers.forEach(gpu.release)
            activations = nil
            activations = try allocateActivations(batch: batch, time: t)
        }
        let a = activations!
        let (n, c, v, hCount) = (batch * t, shape.width, shape.vocab, shape.heads)
        let d = c / hCount
        let scale = 1 / Float(d).squareRoot()
        try gpu.upload(tokens, to: a.tokens)
        try gpu.upload(targets, to: a.targets)
        for (name, count) in parameters { try gpu.zero(grads[name]!, bytes: count * 4) }

        // Forward.
        try launch("elementwise.cu", "embedding_forward", grid: (n, 1, 1), block: (128, 1, 1),
                   [w("tokenEmbedding.weight"), .pointer(a.tokens), .pointer(a.xs[0]), .int32(Int32(c))])
        try add(a.xs[0], weights["positionEmbedding.weight"]!, a.xs[0], n * c, bCount: t * c)
        for l in 0..<shape.layers {
            let p = "blocks.\(l)."
            try layerNorm(a.xs[l], p + "norm1", a.h1[l], a.mean1[l], a.rstd1[l], rows: n)
            try blas.matmul(a: a.h1[l], b: weights[p + "attention.qkv.weight"]!, c: a.qkv, bias: weights[p + "attention.qkv.bias"]!,
                            m: n, n: 3 * c, k: c, transB: true, epilogue: .bias)
            for (which, part) in [a.q[l], a.k[l], a.v[l]].enumerated() {
                try heads(rows: a.qkv, heads: part, parts: 3, which: which, toHeads: true, a)
            }
            try launch("attention.cu", "attention_forward", grid: ((t + 3) / 4, batch * hCount, 1), block: (128, 1, 1),
                       [.pointer(a.q[l]), .pointer(a.k[l]), .pointer(a.v[l]), .pointer(a.att[l]), .pointer(a.lse[l]),
                        .int32(Int32(batch * hCount)), .int32(Int32(t)), .int32(Int32(d)), .float(scale)])
            try heads(rows: a.y[l], heads: a.att[l], parts: 1, which: 0, toHeads: false, a)
            try blas.matmul(a: a.y[l], b: weights[p + "attention.proj.weight"]!, c: a.tmp, bias: weights[p + "attention.proj.bias"]!,
                            m: n, n: c, k: c, transB: true, epilogue: .bias)
            try add(a.xs[l], a.tmp, a.x1[l], n * c)
            try layerNorm(a.x1[l], p + "norm2", a.h2[l], a.mean2[l], a.rstd2[l], rows: n)
            try blas.matmul(a: a.h2[l], b: weights[p + "mlp.fc.weight"]!, c: a.pre[l], bias: weights[p + "mlp.fc.bias"]!,
                            m: n, n: 4 * c, k: c, transB: true, epilogue: .bias)
            try launch("elementwise.cu", "gelu_forward", grid: CUDAContext.gridStride(n * 4 * c), [.pointer(a.pre[l]), .pointer(a.act[l]), .int64(Int64(n * 4 * c))])
            try blas.matmul(a: a.act[l], b: weights[p + "mlp.proj.weight"]!, c: a.tmp, bias: weights[p + "mlp.proj.bias"]!,
                            m: n, n: c, k: 4 * c, transB: true, epilogue: .bias)
            try add(a.x1[l], a.tmp, a.xs[l + 1], n * c)
        }
        let last = a.xs[shape.layers]
        try layerNorm(last, "finalNorm", a.hf, a.meanF, a.rstdF, rows: n)
        try blas.matmul(a: a.hf, b: weights["tokenEmbedding.weight"]!, c: a.logits, m: n, n: v, k: c, transB: true)
        try launch("rows.cu", "cross_entropy_forward", grid: CUDAContext.warpPerRow(n),
                   [.pointer(a.logits), .pointer(a.targets), .pointer(a.losses), .pointer(a.lseCE), .int64(Int64(n)), .int32(Int32(v)), .int32(-1)])

        // Backward.
        try launch("rows.cu", "cross_entropy_backward", grid: ((v + 255) / 256, min(n, 65_535), 1),
                   [.pointer(a.logits), .pointer(a.targets), .pointer(a.lseCE), .pointer(a.dlogits), .float(1 / Float(n)),
                    .int64(Int64(n)), .int32(Int32(v)), .int32(-1)])
        try blas.matmul(a: a.dlogits, b: weights["tokenEmbedding.weight"]!, c: a.dh, m: n, n: c, k: v)
        try blas.matmul(a: a.dlogits, b: a.hf, c: grads["tokenEmbedding.weight"]!, m: v, n: c, k: n, transA: true, accumulate: true)
        try layerNormBackward(last, "finalNorm", a.meanF, a.rstdF, dy: a.dh, dx: a.dx, rows: n)
        for l in (0..<shape.layers).reversed() {
            let p = "blocks.\(l)."
            // MLP: out = GELU(h2·Wfcᵀ + bfc)·Wprojᵀ + bproj, h2 = LN2(x1).
            try blas.matmul(a: a.dx, b: a.act[l], c: grads[p + "mlp.proj.weight"]!, m: c, n: 4 * c, k: n, transA: true)
            try columnSum(a.dx, into: grads[p + "mlp.proj.bias"]!, rows: n, cols: c)
            try blas.matmul(a: a.dx, b: weights[p + "mlp.proj.weight"]!, c: a.dact, m: n, n: 4 * c, k: c)
            try launch("elementwise.cu", "gelu_backward", grid: CUDAContext.gridStride(n * 4 * c),
                       [.pointer(a.pre[l]), .pointer(a.dact), .pointer(a.dpre), .int64(Int64(n * 4 * c))])
            try blas.matmul(a: a.dpre, b: a.h2[l], c: grads[p + "mlp.fc.weight"]!, m: 4 * c, n: c, k: n, transA: true)
            try columnSum(a.dpre, into: grads[p + "mlp.fc.bias"]!, rows: n, cols: 4 * c)
            try blas.matmul(a: a.dpre, b: weights[p + "mlp.fc.weight"]!, c: a.dh, m: n, n: c, k: 4 * c)
            try layerNormBackward(a.x1[l], p + "norm2", a.mean2[l], a.rstd2[l], dy: a.dh, dx: a.dtmp, rows: n)
            try add(a.dx, a.dtmp, a.dx1, n * c)
            // Attention: out = merge(attention(split(h1·Wqkvᵀ + bqkv)))·Wprojᵀ + bproj, h1 = LN1(x).
            try blas.matmul(a: a.dx1, b: a.y[l], c: grads[p + "attention.proj.weight"]!, m: c, n: c, k: n, transA: true)
            try columnSum(a.dx1, into: grads[p + "attention.proj.bias"]!, rows: n, cols: c)
            try blas.matmul(a: a.dx1, b: weights[p + "attention.proj.weight"]!, c: a.dy, m: n, n: c, k: c)
            try heads(rows: a.dy, heads: a.dout, parts: 1, which: 0, toHeads: true, a)
            try launch("attention.cu", "attention_backward_delta", grid: CUDAContext.warpPerRow(batch * hCount * t),
                       [.pointer(a.att[l]), .pointer(a.dout), .pointer(a.delta), .int64(Int64(batch * hCount * t)), .int32(Int32(d))])
            try gpu.zero(a.dq, bytes: n * c * 4)
            try launch("attention.cu", "attention_backward", grid: ((t + 3) / 4, batch * hCount, 1), block: (128, 1, 1),
                       [.pointer(a.q[l]), .pointer(a.k[l]), .pointer(a.v[l]), .pointer(a.lse[l]), .pointer(a.delta), .pointer(a.dout),
                        .pointer(a.dq), .pointer(a.dk), .pointer(a.dv), .int32(Int32(batch * hCount)), .int32(Int32(t)), .int32(Int32(d)),
                        .float(scale)])
            for (which, part) in [a.dq, a.dk, a.dv].enumerated() {
                try heads(rows: a.dqkv, heads: part, parts: 3, which: which, toHeads: false, a)
            }
            try blas.matmul(a: a.dqkv, b: a.h1[l], c: grads[p + "attention.qkv.weight"]!, m: 3 * c, n: c, k: n, transA: true)
            try columnSum(a.dqkv, into: grads[p + "attention.qkv.bias"]!, rows: n, cols: 3 * c)
            try blas.matmul(a: a.dqkv, b: weights[p + "attention.qkv.weight"]!, c: a.dh, m: n, n: c, k: 3 * c)
            try layerNormBackward(a.xs[l], p + "norm1", a.mean1[l], a.rstd1[l], dy: a.dh, dx: a.dtmp, rows: n)
            try add(a.dx1, a.dtmp, a.dx, n * c)
        }
        try launch("elementwise.cu", "embedding_backward", grid: (n, 1, 1), block: (128, 1, 1),
                   [.pointer(a.dx), .pointer(a.tokens), g("tokenEmbedding.weight"), .int32(Int32(c))])
        // Position t's gradient sums over the batch: column sums of dx viewed as [B, T·C].
        try columnSum(a.dx, into: grads["positionEmbedding.weight"]!, rows: batch, cols: t * c)

        // Clip and update.
        try gpu.zero(normBuffer, bytes: 4)
        for (name, count) in parameters {
            try launch("optimizer.cu", "sum_of_squares", grid: CUDAContext.gridStride(count),
                       [.pointer(grads[name]!), .int64(Int64(count)), .pointer(normBuffer)])
        }
        let losses: [Float] = try gpu.download(a.losses, count: n)
        let norm = try gpu.download(normBuffer, count: 1, as: Float.self)[0].squareRoot()
        let gradScale: Float = maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
        step += 1
        let largest = parameters.map(\.count).max() ?? 1
        try launch("optimizer.cu", "adamw_multi_tensor", grid: (CUDAContext.gridStride(largest).0, parameters.count, 1),
                   [.pointer(adamTable), .float(learningRate), .float(beta1), .float(beta2), .float(eps),
                    .float(1 - pow(beta1, Float(step))), .float(1 - pow(beta2, Float(step))), .float(gradScale)])
        try gpu.synchronize()
        return (losses.reduce(0, +) / Float(n), norm)
    }
}
