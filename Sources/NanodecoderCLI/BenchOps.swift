import ArgumentParser
import Foundation
import NanoCPU
import NanoEngine

/// `nanodecoder bench ops`: the engine's kernels next to their peers measured in the same run —
/// matmul against a direct call of the same BLAS primitive, row kernels against a memory copy.
struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops", abstract: "GFLOP/s of the engine's matmul vs direct BLAS; GB/s of GELU, LayerNorm, softmax vs memory copy.")

    @Option(help: "Timed repetitions per measurement (the median is reported).") var repeats = 20
    @Option(help: "Rows (tokens) for the GPT shapes.") var rows = 4096
    @Option(help: "Model width.") var width = 384
    @Option(help: "Rows for the GPT-2 language-model head (0 skips it).") var headRows = 2048

    func run() throws {
        let backend = CPUBackend.shared
        let threads = Parallel.threads
        print("cores: \(ProcessInfo.processInfo.activeProcessorCount), kernel threads: \(threads)")
        print("fp32 GEMM: \(backend.gemmDescription)  [NANODECODER_BLAS=onednn|openblas overrides]")
        print("timings: median of \(repeats) runs after 3 warm-up runs\n")
        try withNoGrad {
            try benchMatmul(backend)
            print("")
            try benchBF16Matmul(backend)
            print("")
            try benchRowKernels(backend, rows: rows, width: width, kernels: [.square, .gelu, .layerNorm, .softmax])
            print("")
            // The shapes these kernels run at in GPT-2 training: GELU on the MLP's 4× hidden
            // activations, softmax over a GPT-2 vocabulary (out of cache, like the copy beside them).
            try benchRowKernels(backend, rows: rows, width: 4 * width, kernels: [.gelu])
            print("")
            try benchRowKernels(backend, rows: 512, width: 50257, kernels: [.softmax])
            print("")
        }
        try benchAttention()
        if headRows > 0 {
            print("")
            try benchLanguageModelHead(backend)
        }
    }

    /// The GPT-2 head (vocabulary 50304, width 768) and its cross-entropy, forward and backward:
    /// unfused (logits and their gradient for every row) against `Tensor.linearCrossEntropy`
    /// (chunks of rows), time and the allocator's peak of live bytes above what was live before.
    private func benchLanguageModelHead(_ backend: CPUBackend) throws {
        let (n, c, v) = (headRows, 768, 50304)
        let hidden = try Tensor.randn([n, c], generator: Generator(seed: 3))
        let weight = try Tensor.randn([v, c], std: 0.02, generator: Generator(seed: 4))
        let targets = try Tensor(indices: (0..<n).map { Int32(($0 * 7919) % v) }, shape: [n])
        hidden.requiresGrad = true; weight.requiresGrad = true
        var results: [(name: String, seconds: Double, peak: Int)] = []
        for (name, loss) in [("unfused: linear + crossEntropy", { try hidden.linear(weight: weight).crossEntropy(targets: targets) }),
                             ("fused: linearCrossEntropy     ", { try Tensor.linearCrossEntropy(hidden: hidden, weight: weight, targets: targets) })]
            as [(String, () throws -> Tensor)] {
            var peak = 0
            let seconds = try median(repeats: 3, warmUp: 1) {
                hidden.grad = nil; weight.grad = nil
                backend.allocator.resetPeak()
                let before = backend.allocator.liveBytes
                try loss().backward()
                peak = backend.allocator.peakLiveBytes - before
            }
            results.append((name, seconds, peak))
        }
        let chunk = Swift.max(1, Swift.min(n, (1 << 25) / v))
        print(String(format: "LM head + cross-entropy, %d rows × %d → %d (fused in chunks of %d rows), forward+backward:", n, c, v, chunk))
        for r in results {
            print(String(format: "  %@  %.0f ms, peak %.0f MB (%.2f× the unfused time, %.2f× its memory)", r.name, r.seconds * 1e3,
                         Double(r.peak) / 1e6, r.seconds / results[0].seconds, Double(r.peak) / Double(max(results[0].peak, 1))))
        }
    }

    /// Fused causal attention forward and backward at workload B's shape (heads of 64), against
    /// the big GEMMs' rate above. FLOPs counted for the causal half only.
    private func benchAttention() throws {
        let (batch, time, heads, dim) = (max(1, rows / 256), 256, width / 64, 64)
        let qkv = try Tensor.randn([batch, time, 3 * heads * dim], generator: Generator(seed: 1))
        qkv.requiresGrad = true
        let g = try Tensor.randn([batch, time, heads * dim], generator: Generator(seed: 2))
        let flops = 2.0 * Double(batch * heads) * Double(time * time) * Double(dim)   // QKᵀ and PV, causal half
        let forward = try median { _ = try withNoGrad { try Tensor.packedCausalAttention(qkv: qkv, heads: heads) } }
        let both = try median { try Tensor.packedCausalAttention(qkv: qkv, heads: heads).backward(gradient: g) }
        print(String(format: "attention B=%d T=%d H=%d D=%d  forward %.2f ms (%.1f GFLOP/s), forward+backward %.2f ms (%.1f GFLOP/s)",
                     batch, time, heads, dim, forward * 1e3, flops / forward / 1e9, both * 1e3, 3.5 * flops / both / 1e9))
    }

    private func median(repeats: Int? = nil, warmUp: Int = 3, _ body: () throws -> Void) rethrows -> Double {
        for _ in 0..<warmUp { try body() }
        var times: [Double] = []
        for _ in 0..<(repeats ?? self.repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }

    private func benchMatmul(_ backend: CPUBackend) throws {
        let m = rows, d = width, h = 4 * width
        let x = try Tensor.randn([m, d]), w = try Tensor.randn([h, d]), g = try Tensor.randn([m, h])
        let out = UnsafeMutablePointer<Float>.allocate(capacity: m * h)
        defer { out.deallocate() }
        // (label, engine call, direct call, M, N, K, transA, transB)
        let cases: [(String, () throws -> Tensor, UnsafeRawPointer, UnsafeRawPointer, Int, Int, Int, Bool, Bool)] = [
            ("forward  Y = X·Wᵀ ", { try x.matmul(w, transposeOther: true) }, UnsafeRawPointer(x.rawPointer), UnsafeRawPointer(w.rawPointer), m, h, d, false, true),
            ("backward dX = dY·W", { try g.matmul(w) }, UnsafeRawPointer(g.rawPointer), UnsafeRawPointer(w.rawPointer), m, d, h, false, false),
            ("backward dW = dYᵀ·X", { try g.matmul(x, transposeSelf: true) }, UnsafeRawPointer(g.rawPointer), UnsafeRawPointer(x.rawPointer), h, d, m, true, false),
        ]
        let library = backend.fp32Library == .openBLAS ? "OpenBLAS" : "oneDNN"
        print("matmul (fp32)          shape M×N×K        engine GFLOP/s   direct \(library) GFLOP/s   engine/direct   (other library, direct)")
        for (label, engine, a, b, mm, nn, kk, ta, tb) in cases {
            let flops = 2.0 * Double(mm * nn * kk)
            let viaOneDNN = { backend.gemm.run(a: a, b: b, bias: nil, c: out, m: mm, n: nn, k: kk, transA: ta, transB: tb) }
            let viaOpenBLAS = { backend.openBLAS.run(a: a, b: b, bias: nil, c: out, m: mm, n: nn, k: kk, transA: ta, transB: tb) }
            let (direct, other, otherName) = backend.fp32Library == .openBLAS
                ? (viaOpenBLAS, viaOneDNN, "oneDNN " + backend.gemm.implementation(m: mm, n: nn, k: kk, transA: ta, transB: tb))
                : (viaOneDNN, viaOpenBLAS, "OpenBLAS")
            let tEngine = try median { _ = try engine() }
            let tDirect = median(direct)
            let tOther = median(other)
            print(String(format: "%@  %5d×%4d×%4d   %10.1f        %10.1f            %6.1f%%      %.1f %@",
                         label, mm, nn, kk, flops / tEngine / 1e9, flops / tDirect / 1e9, 100 * tDirect / tEngine,
                         flops / tOther / 1e9, otherName))
        }
    }

    /// `mixed_precision: bf16`'s matmul at the forward shape against fp32 in the same run, with
    /// a correctness check: the product must equal the fp32 product of the bf16-rounded operands
    /// (this is how the native oneDNN bf16 path gets checked on a CPU that has one).
    private func benchBF16Matmul(_ backend: CPUBackend) throws {
        let (m, d, h) = (rows, width, 4 * width)
        let x = try Tensor.randn([m, d], generator: Generator(seed: 3)), w = try Tensor.randn([h, d], generator: Generator(seed: 4))
        let support = backend.gemm.bf16Support
        print("bf16 matmul: " + (support.native ? "oneDNN \(support.detail)" : "no bf16 matmul on this CPU (\(support.detail)); operands widened to fp32"))
        let flops = 2.0 * Double(m * h * d)
        let tFloat = try median { _ = try x.matmul(w, transposeOther: true) }
        let tBF16 = try median { _ = try MixedPrecision.run(.bfloat16) { try x.matmul(w, transposeOther: true) } }
        let low = try MixedPrecision.run(.bfloat16) { try x.matmul(w, transposeOther: true) }.toArray()
        let rounded = { (t: Tensor) throws -> Tensor in try t.cast(to: .bfloat16).cast(to: .float32) }
        let reference = try rounded(x).matmul(rounded(w), transposeOther: true).toArray()
        let worst = zip(low, reference).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        print(String(format: "forward  Y = X·Wᵀ   %5d×%4d×%4d   bf16 %.1f GFLOP/s, fp32 %.1f GFLOP/s (bf16/fp32 %.2f×); "
                     + "largest difference from fp32 on bf16-rounded operands %.1e (%@)",
                     m, h, d, flops / tBF16 / 1e9, flops / tFloat / 1e9, tFloat / tBF16, worst, worst < 1e-4 ? "ok" : "WRONG"))
    }

    enum RowKernel { case square, gelu, layerNorm, softmax }

    private func benchRowKernels(_ backend: CPUBackend, rows: Int, width: Int, kernels selected: [RowKernel]) throws {
        let x = try Tensor.randn([rows, width])
        let w = try Tensor.ones([width]), b = try Tensor.zeros([width])
        let dst = try Tensor.empty([rows, width])
        let bytes = Double(rows * width * 8)   // read x, write y
        let tCopy = median { backend.copy(x, to: dst) }
        print(String(format: "row kernels on [%d × %d] fp32, %.0f MB in + out (GB/s counts 8 bytes per element: read + write)",
                     rows, width, bytes / 1e6))
        print(String(format: "memory copy             %7.1f GB/s", bytes / tCopy / 1e9))
        let kernels: [(String, () throws -> Tensor)] = selected.map {
            switch $0 {
            case .square: ("x² (no math)", { try x.square() })
            case .gelu: ("GELU (tanh)", { try x.gelu() })
            case .layerNorm: ("LayerNorm  ", { try x.layerNorm(weight: w, bias: b) })
            case .softmax: ("softmax    ", { try x.softmax() })
            }
        }
        for (label, body) in kernels {
            let t = try median { _ = try body() }
            print(String(format: "%@             %7.1f GB/s   %6.1f%% of copy", label, bytes / t / 1e9, 100 * tCopy / t))
        }
    }
}
