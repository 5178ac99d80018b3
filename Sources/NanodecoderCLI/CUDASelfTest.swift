import ArgumentParser
import Foundation
import NanoCUDA
import NanoEngine

/// `nanodecoder cuda selftest`: compiles every GPU kernel for the GPU present, runs each on random
/// data and compares with the CPU backend (forward values and gradients), printing the largest
/// relative difference per kernel. Exits non-zero when any kernel is off. This is the first thing
/// to run on a GPU machine (see README, "GPU").
struct CUDASelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "selftest",
                                                    abstract: "Run every GPU kernel against the CPU backend (needs an NVIDIA GPU).")

    @Option(help: "GPU ordinal.") var device = 0
    @Flag(help: "Load PTX (JIT-compiled by the driver) instead of CUBIN.") var ptx = false

    func run() throws {
        try Nanodecoder.reporting {
            let driver: CUDADriver
            do { driver = try CUDADriver() } catch let error as CUDALibraryError {
                throw CommandFailure(description: "cuda selftest: no NVIDIA driver on this machine: \(error)")
            }
            let gpu = try CUDAContext(driver: driver, ordinal: device)
            let nvrtc = try NVRTC()
            print("\(gpu.device); NVRTC \(nvrtc.version.major).\(nvrtc.version.minor)")
            let modules = try gpu.loadKernels(nvrtc, ptx: ptx)
            let blas = Result { try CUBLASLt(context: gpu) }
            let checks = KernelChecks(gpu: gpu, modules: modules, blas: blas)
            var failures: [String] = []
            for (name, tolerance, check) in checks.all {
                do {
                    let worst = try check()
                    let ok = worst <= tolerance
                    print(String(format: "%@ %@: largest relative difference %.2e (tolerance %.0e)", ok ? "ok  " : "FAIL", name, worst, tolerance))
                    if !ok { failures.append(name) }
                } catch {
                    print("FAIL \(name): \(error)")
                    failures.append(name)
                }
            }
            guard failures.isEmpty else {
                throw CommandFailure(description: "cuda selftest: \(failures.count) kernel check(s) failed: \(failures.joined(separator: ", "))")
            }
            print("all \(checks.all.count) kernel checks passed")
        }
    }
}

/// One check per kernel family: inputs from a fixed seed, the kernel on the GPU, the same
/// computation on the CPU backend (tensor ops and autograd) or in plain Swift.
private struct KernelChecks {
    let gpu: CUDAContext
    let modules: [String: CUDAContext.Module]
    /// cuBLASLt, or why it could not be loaded (its checks then fail with that error).
    let blas: Result<CUBLASLt, any Error>

    typealias Check = (name: String, tolerance: Float, run: () throws -> Float)

    var all: [Check] {
        // GELU's tolerance allows for NVRTC's --use_fast_math tanh.
        [("gelu_forward/backward", 1e-4, gelu), ("add (broadcast)", 0, add), ("affine/fill", 1e-6, affineAndFill),
         ("cast_f32_bf16/bf16_f32", 0, casts), ("embedding_forward/backward", 1e-6, embedding), ("column_sum", 1e-5, columnSum),
         ("layernorm_forward (residual)", 1e-5, layerNormForward), ("layernorm_backward", 1e-4, layerNormBackward),
         ("cross_entropy_forward/backward", 1e-5, crossEntropy), ("attention_forward", 1e-5, attentionForward),
         ("attention_backward", 1e-4, attentionBackward), ("adamw_multi_tensor", 1e-6, adamW),
         ("heads_permute (QKV rows ↔ heads)", 0, headsPermute), ("sum_of_squares", 1e-5, sumOfSquares), ("find_non_finite", 0, findNonFinite),
         ("cuBLASLt fp32 (4 transposes, batched, bias)", 1e-4, { try gemm(.float32) }),
         ("cuBLASLt TF32", 1e-2, { try gemm(.tf32) }),
         ("cuBLASLt bf16 operands", 1e-4, { try gemm(.bfloat16) }),
         ("cuBLASLt bias+GELU epilogue", 1e-3, { try gemm(.float32, epilogue: .geluBias) })]
    }

    /// C = op(A)·op(B) (+ bias) for every transpose combination, batched (batch 3, B shared and
    /// not) against the CPU backend; bf16 operands against fp32 products of the rounded values.
    private func gemm(_ precision: CUBLASLt.Precision, epilogue: CUBLASLt.Epilogue = .bias) throws -> Float {
        let blas = try self.blas.get()
        let (batch, m, n, k) = (3, 70, 96, 130)
        var worstSeen: Float = 0
        for (transA, transB, sharedB) in [(false, false, true), (true, false, false), (false, true, false), (true, true, true)] {
            let seed = UInt64(100 + (transA ? 1 : 0) + (transB ? 2 : 0))
            var a = try random(batch * m * k, seed: seed), b = try random((sharedB ? 1 : batch) * k * n, seed: seed + 10)
            let bias = try random(n, seed: seed + 20)
            if precision == .bfloat16 {   // the reference multiplies the values bf16 holds
                a = a.map { BFloat16.toFloat(BFloat16.fromFloat($0)) }; b = b.map { BFloat16.toFloat(BFloat16.fromFloat($0)) }
            }
            let at = try Tensor(a, shape: transA ? [batch, k, m] : [batch, m, k])
            let bt = try Tensor(b, shape: sharedB ? (transB ? [n, k] : [k, n]) : (transB ? [batch, n, k] : [batch, k, n]))
            var reference = try at.matmul(bt, transposeSelf: transA, transposeOther: transB) + Tensor(bias, shape: [n])
            if epilogue == .geluBias { reference = try reference.gelu() }
            let toDevice: ([Float]) throws -> CUDAContext.DevicePointer = { values in
                precision == .bfloat16 ? try gpu.upload(values.map(BFloat16.fromFloat)) : try gpu.upload(values)
            }
            let (pa, pb, pbias, pc) = (try toDevice(a), try toDevice(b), try gpu.upload(bias), try gpu.allocate(batch * m * n * 4))
            defer { [pa, pb, pbias, pc].forEach(gpu.release) }
            try blas.matmul(a: pa, b: pb, c: pc, bias: pbias, m: m, n: n, k: k, transA: transA, transB: transB, batch: batch,
                            sharedB: sharedB, precision: precision, epilogue: epilogue)
            try gpu.synchronize()
            worstSeen = max(worstSeen, worst(try gpu.download(pc, count: batch * m * n), try reference.toArray()))
        }
        return worstSeen
    }

    private func random(_ n: Int, seed: UInt64, scale: Float = 1) throws -> [Float] {
        try Tensor.randn([n], std: scale, generator: Generator(seed: seed)).toArray()
    }

    private func worst(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
    }

    private func grid(_ n: Int) -> (Int, Int, Int) { CUDAContext.gridStride(n) }
    private let threads = CUDAContext.blockOf256
    private func warpRows(_ rows: Int) -> (Int, Int, Int) { CUDAContext.warpPerRow(rows) }

    private func launch(_ module: String, _ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int),
                        _ args: [CUDAContext.Argument]) throws {
        try gpu.launch(modules[module]!, kernel, grid: grid, block: block, args)
        try gpu.synchronize()
    }

    /// Device copies of float arrays, released after `body`.
    private func withBuffers<R>(_ arrays: [[Float]], _ body: ([CUDAContext.DevicePointer]) throws -> R) throws -> R {
        var pointers: [CUDAContext.DevicePointer] = []
        defer { pointers.forEach(gpu.release) }
        for a in arrays { pointers.append(try gpu.upload(a)) }
        return try body(pointers)
    }

    private func gelu() throws -> Float {
        let n = 10_007
        let x0 = try random(n, seed: 1, scale: 2), dy0 = try random(n, seed: 2)
        let x = try Tensor(x0, shape: [n]); x.requiresGrad = true
        let y = try x.gelu()
        try (y * Tensor(dy0, shape: [n])).sum().backward()
        let (yRef, dxRef) = (try y.toArray(), try x.grad!.toArray())
        return try withBuffers([x0, dy0, [Float](repeating: 0, count: n), [Float](repeating: 0, count: n)]) { p in
            try launch("elementwise.cu", "gelu_forward", grid: grid(n), block: threads, [.pointer(p[0]), .pointer(p[2]), .int64(Int64(n))])
            try launch("elementwise.cu", "gelu_backward", grid: grid(n), block: threads,
                       [.pointer(p[0]), .pointer(p[1]), .pointer(p[3]), .int64(Int64(n))])
            return max(worst(try gpu.download(p[2], count: n), yRef), worst(try gpu.download(p[3], count: n), dxRef))
        }
    }

    private func add() throws -> Float {
        let (n, bn) = (6 * 384, 384)
        let a = try random(n, seed: 3), b = try random(bn, seed: 4)
        let expected = (0..<n).map { a[$0] + b[$0 % bn] }
        return try withBuffers([a, b, [Float](repeating: 0, count: n)]) { p in
            try launch("elementwise.cu", "add", grid: grid(n), block: threads,
                       [.pointer(p[0]), .pointer(p[1]), .pointer(p[2]), .int64(Int64(n)), .int64(Int64(bn))])
            return worst(try gpu.download(p[2], count: n), expected)
        }
    }

    private func affineAndFill() throws -> Float {
        let n = 5000
        let x = try random(n, seed: 5)
        return try withBuffers([x, [Float](repeating: 0, count: n), [Float](repeating: 0, count: n)]) { p in
            try launch("elementwise.cu", "affine", grid: grid(n), block: threads,
                       [.pointer(p[0]), .pointer(p[1]), .float(0.5), .float(-2), .int64(Int64(n))])
            try launch("elementwise.cu", "fill", grid: grid(n), block: threads, [.pointer(p[2]), .float(3.25), .int64(Int64(n))])
            return max(worst(try gpu.download(p[1], count: n), x.map { 0.5 * $0 - 2 }),
                       worst(try gpu.download(p[2], count: n), [Float](repeating: 3.25, count: n)))
        }
    }

    /// Round to nearest even both ways, bit for bit the CPU's conversion.
    private func casts() throws -> Float {
        let n = 4099
        let x = try random(n, seed: 6, scale: 100)
        let halves = try gpu.allocate(n * 2)
        defer { gpu.release(halves) }
        return try withBuffers([x, [Float](repeating: 0, count: n)]) { p in
            try launch("elementwise.cu", "cast_f32_bf16", grid: grid(n), block: threads, [.pointer(p[0]), .pointer(halves), .int64(Int64(n))])
            let bits: [UInt16] = try gpu.download(halves, count: n)
            try launch("elementwise.cu", "cast_bf16_f32", grid: grid(n), block: threads, [.pointer(halves), .pointer(p[1]), .int64(Int64(n))])
            let mismatched = zip(bits, x).filter { $0 != BFloat16.fromFloat($1) }.count
            return max(Float(mismatched), worst(try gpu.download(p[1], count: n), bits.map(BFloat16.toFloat)))
        }
    }

    private func embedding() throws -> Float {
        let (vocab, dim, rows) = (50, 96, 300)
        let table = try random(vocab * dim, seed: 7), dout = try random(rows * dim, seed: 8)
        let ids = (0..<rows).map { Int32(($0 * 7) % vocab) }   // repeats: the backward's atomics add them
        var forward = [Float](), backward = [Float](repeating: 0, count: vocab * dim)
        for r in 0..<rows {
            let id = Int(ids[r])
            forward += table[(id * dim)..<((id + 1) * dim)]
            for c in 0..<dim { backward[id * dim + c] += dout[r * dim + c] }
        }
        let idBuffer = try gpu.upload(ids)
        defer { gpu.release(idBuffer) }
        return try withBuffers([table, dout, [Float](repeating: 0, count: rows * dim), [Float](repeating: 0, count: vocab * dim)]) { p in
            try launch("elementwise.cu", "embedding_forward", grid: (rows, 1, 1), block: (128, 1, 1),
                       [.pointer(p[0]), .pointer(idBuffer), .pointer(p[2]), .int32(Int32(dim))])
            try launch("elementwise.cu", "embedding_backward", grid: (rows, 1, 1), block: (128, 1, 1),
                       [.pointer(p[1]), .pointer(idBuffer), .pointer(p[3]), .int32(Int32(dim))])
            return max(worst(try gpu.download(p[2], count: rows * dim), forward), worst(try gpu.download(p[3], count: vocab * dim), backward))
        }
    }

    private func columnSum() throws -> Float {
        let (rows, cols) = (1000, 300)
        let x = try random(rows * cols, seed: 9)
        let expected = try Tensor(x, shape: [rows, cols]).sum(axes: [0]).toArray()
        return try withBuffers([x, [Float](repeating: 0, count: cols)]) { p in
            try launch("elementwise.cu", "column_sum", grid: ((cols + 255) / 256, 1, 1), block: threads,
                       [.pointer(p[0]), .pointer(p[1]), .int64(Int64(rows)), .int32(Int32(cols))])
            return worst(try gpu.download(p[1], count: cols), expected)
        }
    }

    private func layerNormForward() throws -> Float {
        let (rows, cols) = (129, 384)
        let x = try random(rows * cols, seed: 10), r = try random(rows * cols, seed: 11)
        let w = try random(cols, seed: 12), b = try random(cols, seed: 13)
        let sum = try Tensor(x, shape: [rows, cols]) + Tensor(r, shape: [rows, cols])
        let y = try sum.layerNorm(weight: Tensor(w, shape: [cols]), bias: Tensor(b, shape: [cols]))
        let zeros = [Float](repeating: 0, count: rows * cols)
        return try withBuffers([x, r, zeros, w, b, zeros, [Float](repeating: 0, count: rows), [Float](repeating: 0, count: rows)]) { p in
            try launch("rows.cu", "layernorm_forward", grid: warpRows(rows), block: threads,
                       [.pointer(p[0]), .pointer(p[1]), .pointer(p[2]), .pointer(p[3]), .pointer(p[4]), .pointer(p[5]),
                        .pointer(p[6]), .pointer(p[7]), .int64(Int64(rows)), .int32(Int32(cols)), .float(1e-5)])
            return max(worst(try gpu.download(p[2], count: rows * cols), try sum.toArray()),
                       worst(try gpu.download(p[5], count: rows * cols), try y.toArray()))
        }
    }

    private func layerNormBackward() throws -> Float {
        let (rows, cols) = (129, 384)
        let x0 = try random(rows * cols, seed: 14), w0 = try random(cols, seed: 15), dy = try random(rows * cols, seed: 16)
        let x = try Tensor(x0, shape: [rows, cols]), w = try Tensor(w0, shape: [cols]), b = try Tensor.zeros([cols])
        for t in [x, w, b] { t.requiresGrad = true }
        try (x.layerNorm(weight: w, bias: b) * Tensor(dy, shape: [rows, cols])).sum().backward()
        // mean and 1/std per row, as forward saved them.
        var mean = [Float](), rstd = [Float]()
        for r in 0..<rows {
            let row = x0[(r * cols)..<((r + 1) * cols)]
            let m = row.reduce(0, +) / Float(cols)
            let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(cols)
            mean.append(m); rstd.append(1 / (v + 1e-5).squareRoot())
        }
        let zeros = [Float](repeating: 0, count: rows * cols), zc = [Float](repeating: 0, count: cols)
        return try withBuffers([x0, w0, mean, rstd, dy, zeros, zc, zc]) { p in
            try launch("rows.cu", "layernorm_backward", grid: warpRows(rows), block: threads,
                       [.pointer(p[0]), .pointer(p[1]), .pointer(p[2]), .pointer(p[3]), .pointer(p[4]), .pointer(p[5]),
                        .pointer(p[6]), .pointer(p[7]), .int64(Int64(rows)), .int32(Int32(cols))])
            return max(worst(try gpu.download(p[5], count: rows * cols), try x.grad!.toArray()),
                       worst(try gpu.download(p[6], count: cols), try w.grad!.toArray()),
                       worst(try gpu.download(p[7], count: cols), try b.grad!.toArray()))
        }
    }

    private func crossEntropy() throws -> Float {
        let (rows, classes) = (67, 1000)
        let logits0 = try random(rows * classes, seed: 17, scale: 3)
        let targets0 = (0..<rows).map { $0 % 11 == 5 ? Int32(-1) : Int32(($0 * 37) % classes) }
        let valid = targets0.filter { $0 >= 0 }.count
        let logits = try Tensor(logits0, shape: [rows, classes]); logits.requiresGrad = true
        let loss = try logits.crossEntropy(targets: Tensor(indices: targets0, shape: [rows]))
        try loss.backward()
        let targets = try gpu.upload(targets0)
        defer { gpu.release(targets) }
        return try withBuffers([logits0, [Float](repeating: 0, count: rows), [Float](repeating: 0, count: rows),
                                [Float](repeating: 0, count: rows * classes)]) { p in
            try launch("rows.cu", "cross_entropy_forward", grid: warpRows(rows), block: threads,
                       [.pointer(p[0]), .pointer(targets), .pointer(p[1]), .pointer(p[2]), .int64(Int64(rows)),
                        .int32(Int32(classes)), .int32(-1)])
            try launch("rows.cu", "cross_entropy_backward", grid: ((classes + 255) / 256, min(rows, 65_535), 1), block: threads,
                       [.pointer(p[0]), .pointer(targets), .pointer(p[2]), .pointer(p[3]), .float(1 / Float(valid)),
                        .int64(Int64(rows)), .int32(Int32(classes)), .int32(-1)])
            let mean = try gpu.download(p[1], count: rows, as: Float.self).reduce(0, +) / Float(valid)
            return max(worst([mean], [try loss.item()]), worst(try gpu.download(p[3], count: rows * classes), try logits.grad!.toArray()))
        }
    }

    /// [B, H, T, D] is [B·H, T, D] in memory: the kernels' layout.
    private let attentionShape = [2, 3, 77, 64]

    private func attentionInputs() throws -> (q: [Float], k: [Float], v: [Float], dout: [Float]) {
        let n = attentionShape.reduce(1, *)
        return (try random(n, seed: 18), try random(n, seed: 19), try random(n, seed: 20), try random(n, seed: 21))
    }

    /// The CPU backend's fused attention, its output and gradients for upstream gradient dout.
    private func cpuAttention() throws -> (out: [Float], dq: [Float], dk: [Float], dv: [Float]) {
        let i = try attentionInputs()
        let (q, k, v) = (try Tensor(i.q, shape: attentionShape), try Tensor(i.k, shape: attentionShape), try Tensor(i.v, shape: attentionShape))
        for t in [q, k, v] { t.requiresGrad = true }
        let out = try Tensor.scaledDotProductAttention(q: q, k: k, v: v, causal: true)
        try (out * Tensor(i.dout, shape: attentionShape)).sum().backward()
        return (try out.toArray(), try q.grad!.toArray(), try k.grad!.toArray(), try v.grad!.toArray())
    }

    /// Runs attention_forward; returns device buffers q, k, v, out, lse, dout (caller releases).
    private func gpuAttentionForward() throws -> [CUDAContext.DevicePointer] {
        let i = try attentionInputs()
        let (bh, t, d) = (attentionShape[0] * attentionShape[1], attentionShape[2], attentionShape[3])
        var buffers: [CUDAContext.DevicePointer] = []
        do {
            buffers = [try gpu.upload(i.q), try gpu.upload(i.k), try gpu.upload(i.v)]
            buffers += [try gpu.allocate(bh * t * d * 4), try gpu.allocate(bh * t * 4), try gpu.upload(i.dout)]
        } catch {
            buffers.forEach(gpu.release)
            throw error
        }
        var failed = true
        defer { if failed { buffers.forEach(gpu.release) } }
        try launch("attention.cu", "attention_forward", grid: ((t + 3) / 4, bh, 1), block: (128, 1, 1),
                   [.pointer(buffers[0]), .pointer(buffers[1]), .pointer(buffers[2]), .pointer(buffers[3]), .pointer(buffers[4]),
                    .int32(Int32(bh)), .int32(Int32(t)), .int32(Int32(d)), .float(1 / Float(d).squareRoot())])
        failed = false
        return buffers
    }

    private func attentionForward() throws -> Float {
        let buffers = try gpuAttentionForward()
        defer { buffers.forEach(gpu.release) }
        return worst(try gpu.download(buffers[3], count: attentionShape.reduce(1, *)), try cpuAttention().out)
    }

    private func attentionBackward() throws -> Float {
        var buffers = try gpuAttentionForward()
        defer { buffers.forEach(gpu.release) }
        let (bh, t, d) = (attentionShape[0] * attentionShape[1], attentionShape[2], attentionShape[3])
        let n = bh * t * d
        for bytes in [bh * t * 4, n * 4, n * 4, n * 4] { buffers.append(try gpu.allocate(bytes)) }
        let (delta, dq, dk, dv) = (buffers[6], buffers[7], buffers[8], buffers[9])
        try gpu.zero(dq, bytes: n * 4)
        try launch("attention.cu", "attention_backward_delta", grid: warpRows(bh * t), block: threads,
                   [.pointer(buffers[3]), .pointer(buffers[5]), .pointer(delta), .int64(Int64(bh * t)), .int32(Int32(d))])
        try launch("attention.cu", "attention_backward", grid: ((t + 3) / 4, bh, 1), block: (128, 1, 1),
                   [.pointer(buffers[0]), .pointer(buffers[1]), .pointer(buffers[2]), .pointer(buffers[4]), .pointer(delta),
                    .pointer(buffers[5]), .pointer(dq), .pointer(dk), .pointer(dv),
                    .int32(Int32(bh)), .int32(Int32(t)), .int32(Int32(d)), .float(1 / Float(d).squareRoot())])
        let cpu = try cpuAttention()
        return max(worst(try gpu.download(dq, count: n), cpu.dq), worst(try gpu.download(dk, count: n), cpu.dk),
                   worst(try gpu.download(dv, count: n), cpu.dv))
    }

    /// Two tensors (one decayed) in one launch, one step, against the CPU backend's AdamW.
    private func adamW() throws -> Float {
        let sizes = [1000, 3333], decay: [Float] = [0.1, 0]
        let (lr, b1, b2, eps, step, gradScale): (Float, Float, Float, Float, Int, Float) = (1e-3, 0.9, 0.95, 1e-8, 3, 0.5)
        let c1 = 1 - pow(b1, Float(step)), c2 = 1 - pow(b2, Float(step))
        var worstSeen: Float = 0
        var buffers: [CUDAContext.DevicePointer] = []
        defer { buffers.forEach(gpu.release) }
        var table: [UInt8] = [], expected: [[Float]] = []
        for (i, n) in sizes.enumerated() {
            let p = try random(n, seed: 30 + UInt64(i)), g = try random(n, seed: 40 + UInt64(i))
            let m = try random(n, seed: 50 + UInt64(i), scale: 0.1), v = try random(n, seed: 60 + UInt64(i)).map { $0 * $0 * 0.01 }
            // The CPU backend's AdamW on the same state, with the gradient scaled as the kernel scales it.
            let (pt, mt, vt) = (try Tensor(p, shape: [n]), try Tensor(m, shape: [n]), try Tensor(v, shape: [n]))
            try pt.adamWUpdate(grad: Tensor(g.map { $0 * gradScale }, shape: [n]), m: mt, v: vt,
                               AdamWStep(learningRate: lr, beta1: b1, beta2: b2, eps: eps, weightDecay: decay[i], step: step))
            expected.append(try pt.toArray())
            let pointers = try [p, g, m, v].map { try gpu.upload($0) }
            buffers += pointers
            // struct AdamWTensor { float* param; const float* grad; float* m; float* v; long n; float weightDecay; } (48 bytes)
            var entry = [UInt8](repeating: 0, count: 48)
            entry.withUnsafeMutableBytes { raw in
                for (k, ptr) in pointers.enumerated() { raw.storeBytes(of: ptr, toByteOffset: 8 * k, as: UInt64.self) }
                raw.storeBytes(of: Int64(n), toByteOffset: 32, as: Int64.self)
                raw.storeBytes(of: decay[i], toByteOffset: 40, as: Float.self)
            }
            table += entry
        }
        let tableBuffer = try gpu.upload(table)
        buffers.append(tableBuffer)
        try launch("optimizer.cu", "adamw_multi_tensor", grid: (grid(sizes.max()!).0, sizes.count, 1), block: threads,
                   [.pointer(tableBuffer), .float(lr), .float(b1), .float(b2), .float(eps), .float(c1), .float(c2), .float(gradScale)])
        for (i, n) in sizes.enumerated() {
            worstSeen = max(worstSeen, worst(try gpu.download(buffers[4 * i], count: n), expected[i]))
        }
        return worstSeen
    }

    /// [B, T, 3, H, D] rows → q, k, v heads [B, H, T, D] and back, against index arithmetic here.
    private func headsPermute() throws -> Float {
        let (b, t, h, d) = (2, 5, 3, 4)
        let rows = try random(b * t * 3 * h * d, seed: 80)
        var worstSeen: Float = 0
        return try withBuffers([rows, [Float](repeating: 0, count: b * h * t * d), [Float](repeating: 0, count: rows.count)]) { p in
            for which in 0..<3 {
                try launch("elementwise.cu", "heads_permute", grid: grid(b * h * t * d), block: threads,
                           [.pointer(p[0]), .pointer(p[1]), .int32(Int32(b)), .int32(Int32(t)), .int32(Int32(h)), .int32(Int32(d)),
                            .int32(3), .int32(Int32(which)), .int32(1)])
                var expected = [Float]()
                for bi in 0..<b { for hi in 0..<h { for ti in 0..<t { for di in 0..<d {
                    expected.append(rows[(((bi * t + ti) * 3 + which) * h + hi) * d + di])
                } } } }
                worstSeen = max(worstSeen, worst(try gpu.download(p[1], count: expected.count), expected))
                try launch("elementwise.cu", "heads_permute", grid: grid(b * h * t * d), block: threads,
                           [.pointer(p[2]), .pointer(p[1]), .int32(Int32(b)), .int32(Int32(t)), .int32(Int32(h)), .int32(Int32(d)),
                            .int32(3), .int32(Int32(which)), .int32(0)])
            }
            return max(worstSeen, worst(try gpu.download(p[2], count: rows.count), rows))   // all three parts scattered back
        }
    }

    private func sumOfSquares() throws -> Float {
        let n = 300_001
        let x = try random(n, seed: 70)
        let expected = Float(x.reduce(0.0) { $0 + Double($1) * Double($1) })
        return try withBuffers([x, [0]]) { p in
            try launch("optimizer.cu", "sum_of_squares", grid: grid(n), block: threads, [.pointer(p[0]), .int64(Int64(n)), .pointer(p[1])])
            return abs(try gpu.download(p[1], count: 1, as: Float.self)[0] - expected) / expected
        }
    }

    /// 0 when the kernel finds the one NaN and reports a clean array as clean.
    private func findNonFinite() throws -> Float {
        let n = 100_000
        var x = try random(n, seed: 71)
        var found: [Int32] = []
        for poison in [false, true] {
            if poison { x[77_777] = .nan }
            let flag = try gpu.upload([Int32(0)])
            defer { gpu.release(flag) }
            try withBuffers([x]) { p in
                try launch("optimizer.cu", "find_non_finite", grid: grid(n), block: threads, [.pointer(p[0]), .int64(Int64(n)), .pointer(flag)])
            }
            found.append(try gpu.download(flag, count: 1, as: Int32.self)[0])
        }
        return found == [0, 1] ? 0 : 1
    }
}
