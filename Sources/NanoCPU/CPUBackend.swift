import CKernelMath
import Foundation
import NanoEngine

/// The CPU backend: oneDNN for GEMM, Swift SIMD kernels for everything else, host memory from
/// a caching allocator.
public final class CPUBackend: Backend, @unchecked Sendable {
    /// `.cpu`, or the device this backend stands in for (see `init(standingIn:)`).
    public let device: Device
    public let allocator = CachingAllocator()
    public let gemm = OneDNNMatmul()
    public let openBLAS = OpenBLASGemm(threads: Parallel.threads)

    /// Which library runs fp32 GEMMs. bf16 always runs on oneDNN.
    public enum GEMMLibrary: String, Sendable { case oneDNN = "onednn", openBLAS = "openblas" }
    public let fp32Library: GEMMLibrary

    /// NANODECODER_BLAS=onednn|openblas picks the fp32 GEMM library. oneDNN by default: its
    /// AVX-512 brgemm kernel reaches ≈97% of peak (shared/notes/platform.md), and on an AVX2-only
    /// Zen 3 its "gemm:jit" fallback measured on par with OpenBLAS (`nanodecoder bench ops`).
    public convenience init() { self.init(device: .cpu) }

    /// The fp32 GEMM library in use and its kernel.
    public var gemmDescription: String {
        fp32Library == .oneDNN ? "oneDNN \(OneDNNMatmul.version) (\(gemm.implementation(m: 256, n: 256, k: 256)))" : OpenBLASGemm.kernel
    }

    /// A CPU backend whose tensors say they live on `device` (say `.cuda(0)`), registered in
    /// its place. The kernels and memory are the CPU's: it checks device plumbing (that every
    /// tensor a model, trainer or sampler makes lands on the requested device, since ops refuse
    /// to mix devices) on machines without that device.
    public convenience init(standingIn device: Device) {
        self.init(device: device)
    }

    private init(device: Device) {
        self.device = device
        fp32Library = ProcessInfo.processInfo.environment["NANODECODER_BLAS"].flatMap(GEMMLibrary.init(rawValue:)) ?? .oneDNN
    }

    public static func makeDefault() -> CPUBackend { CPUBackend() }

    /// The registered CPU backend.
    public static var shared: CPUBackend {
        // Device.cpu.backend registers the default instance on first use.
        (try? Device.cpu.backend) as! CPUBackend
    }

    /// While set, every kernel launched is also appended to this tape (see `KernelTape`).
    public var recording: KernelTape?
    /// Set while `captureGraph` records (device values must not be read back then).
    var recordingGraph = false
    /// Set while `captureGraph` records: kernels are taped, not run, as a GPU records a graph
    /// without running it (so the recorded code's effects happen on replay only, on both).
    var recordOnly = false

    /// Records a kernel call when recording; `kernel` replays it on aliases of the tensors.
    @inline(__always) private func tape(_ tensors: Tensor?..., name: String = #function, rows: @autoclosure () -> RowKernel? = nil,
                                        kernel: @escaping (CPUBackend, [Tensor?]) -> Void) {
        recording?.record(self, tensors, name: name, rows: rows(), kernel)
    }

    /// A tensor's memory as rows of `cols` elements (cols 0: the whole tensor is every row's).
    private func access(_ t: Tensor, cols: Int) -> RowKernel.Access {
        RowKernel.Access(UnsafeRawPointer(t.rawPointer), bytes: t.count * t.dtype.size, rowBytes: cols * t.dtype.size)
    }

    /// Rows and columns of a tensor taken as [everything else, last dimension].
    private func rowsAndCols(_ t: Tensor) -> (rows: Int, cols: Int) {
        let cols = t.shape.last ?? 1
        return (cols == 0 ? 0 : t.count / cols, cols)
    }

    /// Elementwise kernels over contiguous float32 tensors of one size and last dimension (views
    /// such as [B, T, C] and [B·T, C] of the same elements), as rows of the last dimension.
    private func elementwiseRows(_ reads: [Tensor], _ writes: [Tensor], costPerElement: Int,
                                 _ span: @escaping @Sendable (Int, Int) -> Void) -> RowKernel? {
        let (rows, cols) = rowsAndCols(writes[0])
        guard rows > 0, (reads + writes).allSatisfy({ $0.count == writes[0].count && $0.shape.last == cols && $0.dtype == .float32 })
        else { return nil }
        return RowKernel(rows: rows, costPerRow: cols * costPerElement, reads: reads.map { access($0, cols: cols) },
                         writes: writes.map { access($0, cols: cols) }) { r in span(r.lowerBound * cols, r.count * cols) }
    }

    public var name: String {
        (device == .cpu ? "" : "\(device) stood in for by ") + "cpu (\(gemmDescription), \(Parallel.threads) threads)"
    }

    // MARK: Memory

    public func allocate(byteCount: Int) throws -> Storage {
        Storage(pointer: allocator.allocate(byteCount), byteCount: byteCount, device: device, allocator: allocator)
    }

    public func write(_ bytes: UnsafeRawBufferPointer, to t: Tensor) {
        if recording != nil {   // constants made during the step (positions): their memory may be reused later in it
            let data = Array(bytes)
            tape(t) { b, t in data.withUnsafeBytes { b.write($0, to: t[0]!) } }
        }
        guard let base = bytes.baseAddress else { return }
        t.rawPointer.copyMemory(from: base, byteCount: min(bytes.count, t.count * t.dtype.size))
    }

    public func read(_ t: Tensor, into bytes: UnsafeMutableRawBufferPointer) {
        refuseReadWhileRecordingGraph("reading \(t)")
        guard let base = bytes.baseAddress else { return }
        base.copyMemory(from: t.rawPointer, byteCount: min(bytes.count, t.count * t.dtype.size))
    }

    public func fill(_ t: Tensor, value: Float) {
        tape(t) { $0.fill($1[0]!, value: value) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        let n = t.count
        switch t.dtype {
        case .float32: t.pointer(as: Float.self).update(repeating: value, count: n)
        case .int32: t.pointer(as: Int32.self).update(repeating: Int32(value), count: n)
        case .uint16: t.pointer(as: UInt16.self).update(repeating: UInt16(value), count: n)
        case .bfloat16: t.pointer(as: UInt16.self).update(repeating: BFloat16.fromFloat(value), count: n)
        case .float16: t.pointer(as: UInt16.self).update(repeating: Float16(value).bitPattern, count: n)
        }
    }

    public func copy(_ src: Tensor, to dst: Tensor) {
        tape(src, dst) { $0.copy($1[0]!, to: $1[1]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        let bytes = src.count * src.dtype.size
        let s = src.rawPointer, d = dst.rawPointer
        Parallel.forRange((bytes + 65535) / 65536, costPerItem: 16384) { r in
            let lo = r.lowerBound * 65536, hi = min(r.upperBound * 65536, bytes)
            (d + lo).copyMemory(from: s + lo, byteCount: hi - lo)
        }
    }

    public func cast(_ src: Tensor, to dst: Tensor) {
        if src.dtype != dst.dtype { tape(src, dst) { $0.cast($1[0]!, to: $1[1]!) } }
        let n = src.count
        if src.dtype == dst.dtype { copy(src, to: dst); return }
        switch (src.dtype, dst.dtype) {   // vectorised C conversions for the mixed-precision casts
        case (.float32, .bfloat16): return convert(src, dst) { nd_f32_to_bf16($0, $1, $2) }
        case (.bfloat16, .float32): return convert(src, dst) { nd_bf16_to_f32($0, $1, $2) }
        case (.float32, .float16): return convert(src, dst) { nd_f32_to_f16($0, $1, $2) }
        case (.float16, .float32): return convert(src, dst) { nd_f16_to_f32($0, $1, $2) }
        default: break
        }
        // General path through float32 values.
        let load = Self.loader(src), store = Self.storer(dst)
        Parallel.forRange(n, costPerItem: 4) { r in for i in r { store(i, load(i)) } }
    }

    /// Runs a conversion over element ranges split across threads.
    private func convert<S, D>(_ src: Tensor, _ dst: Tensor, _ kernel: @escaping @Sendable (UnsafePointer<S>, UnsafeMutablePointer<D>, Int) -> Void) {
        let s = UnsafePointer(src.pointer(as: S.self)), d = dst.pointer(as: D.self)
        Parallel.forRange(src.count, costPerItem: 4) { r in kernel(s + r.lowerBound, d + r.lowerBound, r.count) }
    }

    private static func loader(_ t: Tensor) -> @Sendable (Int) -> Float {
        let p = t.rawPointer
        switch t.dtype {
        case .float32: return { p.assumingMemoryBound(to: Float.self)[$0] }
        case .int32: return { Float(p.assumingMemoryBound(to: Int32.self)[$0]) }
        case .uint16: return { Float(p.assumingMemoryBound(to: UInt16.self)[$0]) }
        case .bfloat16: return { BFloat16.toFloat(p.assumingMemoryBound(to: UInt16.self)[$0]) }
        case .float16: return { Float(Float16(bitPattern: p.assumingMemoryBound(to: UInt16.self)[$0])) }
        }
    }

    private static func storer(_ t: Tensor) -> @Sendable (Int, Float) -> Void {
        let p = t.rawPointer
        switch t.dtype {
        case .float32: return { p.assumingMemoryBound(to: Float.self)[$0] = $1 }
        case .int32: return { p.assumingMemoryBound(to: Int32.self)[$0] = Int32($1) }
        case .uint16: return { p.assumingMemoryBound(to: UInt16.self)[$0] = UInt16($1) }
        case .bfloat16: return { p.assumingMemoryBound(to: UInt16.self)[$0] = BFloat16.fromFloat($1) }
        case .float16: return { p.assumingMemoryBound(to: UInt16.self)[$0] = Float16($1).bitPattern }
        }
    }

    public func random(_ t: Tensor, _ distribution: RandomDistribution, seed: UInt64, offset: UInt64) {
        tape(t) { $0.random($1[0]!, distribution, seed: seed, offset: offset) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        randomFill(t.pointer(as: Float.self), t.count, distribution, seed: seed, offset: offset)
    }

    // MARK: Pointwise

    public func unary(_ op: UnaryOp, _ x: Tensor, _ y: Tensor) {
        tape(x, y, rows: elementwiseRows([x], [y], costPerElement: 4) { [xp = x.pointer(as: Float.self), yp = y.pointer(as: Float.self)] lo, n in
            unarySpan(op, xp + lo, yp + lo, n)
        }) { $0.unary(op, $1[0]!, $1[1]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        unaryForward(op, x.pointer(as: Float.self), y.pointer(as: Float.self), x.count)
    }

    public func unaryBackward(_ op: UnaryOp, x: Tensor, dy: Tensor, dx: Tensor) {
        tape(x, dy, dx, rows: elementwiseRows([x, dy], [dx], costPerElement: 4) {
            [xp = x.pointer(as: Float.self), dyp = dy.pointer(as: Float.self), dxp = dx.pointer(as: Float.self)] lo, n in
            unaryBackwardSpan(op, xp + lo, dyp + lo, dxp + lo, n)
        }) { $0.unaryBackward(op, x: $1[0]!, dy: $1[1]!, dx: $1[2]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        NanoCPU.unaryBackward(op, x.pointer(as: Float.self), dy.pointer(as: Float.self), dx.pointer(as: Float.self), x.count)
    }

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, _ out: Tensor) {
        tape(a, b, out, rows: elementwiseRows([a, b], [out], costPerElement: 1) {
            [ap = a.pointer(as: Float.self), bp = b.pointer(as: Float.self), op2 = out.pointer(as: Float.self)] lo, n in
            binarySpan(op, ap + lo, bp + lo, op2 + lo, n)
        }) { $0.binary(op, $1[0]!, $1[1]!, $1[2]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        binaryKernel(op, a.pointer(as: Float.self), a.shape, b.pointer(as: Float.self), b.shape, out.pointer(as: Float.self), out.shape)
    }

    public func select(_ cond: Tensor, _ a: Tensor, _ b: Tensor, _ out: Tensor) {
        tape(cond, a, b, out) { $0.select($1[0]!, $1[1]!, $1[2]!, $1[3]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        selectKernel(cond.pointer(as: Float.self), cond.shape, a.pointer(as: Float.self), a.shape,
                     b.pointer(as: Float.self), b.shape, out.pointer(as: Float.self), out.shape)
    }

    public func permute(_ x: Tensor, _ perm: [Int], _ out: Tensor) {
        tape(x, out) { $0.permute($1[0]!, perm, $1[1]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        permuteKernel(x.rawPointer, x.shape, perm, out.rawPointer, elementSize: x.dtype.size)
    }

    public func copySlices(_ src: Tensor, _ srcView: AxisView, srcStart: Int, _ dst: Tensor, _ dstView: AxisView,
                           dstStart: Int, length: Int) {
        tape(src, dst) { $0.copySlices($1[0]!, srcView, srcStart: srcStart, $1[1]!, dstView, dstStart: dstStart, length: length) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        copySlicesKernel(src.rawPointer, srcView, srcStart: srcStart, dst.rawPointer, dstView, dstStart: dstStart,
                         length: length, elementSize: src.dtype.size)
    }

    // MARK: GEMM

    public func matmul(_ a: Tensor, _ b: Tensor, bias: Tensor?, _ out: Tensor, batch: Int, m: Int, n: Int, k: Int,
                       transA: Bool, transB: Bool, accumulate: Bool) {
        tape(a, b, bias, out) { $0.matmul($1[0]!, $1[1]!, bias: $1[2], $1[3]!, batch: batch, m: m, n: n, k: k, transA: transA, transB: transB, accumulate: accumulate) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        var type: OneDNNMatmul.ElementType = a.dtype == .bfloat16 ? .bfloat16 : .float32
        var (aPtr, bPtr) = (UnsafeRawPointer(a.rawPointer), UnsafeRawPointer(b.rawPointer))
        var widened: [(UnsafeMutableRawPointer, Int)] = []
        defer { for (p, bytes) in widened { allocator.release(p, byteCount: bytes) } }
        if (a.dtype == .bfloat16 && !gemm.bf16Support.native) || a.dtype == .float16 {
            // No bf16 matmul on this CPU (and no fp16 one on any CPU we target): widen the
            // operands to float32 (exactly) and run the fp32 GEMM. Same products and float32
            // accumulation as a bf16/fp16 kernel, at fp32 speed.
            let half = a.dtype
            func widen(_ p: UnsafeRawPointer, _ count: Int) -> UnsafeRawPointer {
                let w = allocator.allocate(count * 4)
                widened.append((w, count * 4))
                let s = p.assumingMemoryBound(to: UInt16.self), d = w.assumingMemoryBound(to: Float.self)
                Parallel.forRange(count, costPerItem: 4) { r in
                    if half == .bfloat16 { nd_bf16_to_f32(s + r.lowerBound, d + r.lowerBound, r.count) }
                    else { nd_f16_to_f32(s + r.lowerBound, d + r.lowerBound, r.count) }
                }
                return UnsafeRawPointer(w)
            }
            aPtr = widen(aPtr, batch * m * k)
            bPtr = widen(bPtr, b.count)
            type = .float32
        }
        let run = type == .float32 && fp32Library == .openBLAS ? openBLAS.run : { a, b, bias, c, batch, m, n, k, ta, tb, acc in
            self.gemm.run(type, a: a, b: b, bias: bias, c: c, batch: batch, m: m, n: n, k: k, transA: ta, transB: tb, accumulate: acc)
        }
        let biasPtr = bias.map { UnsafePointer($0.pointer(as: Float.self)) }
        let sharedB = b.count == k * n && batch > 1
        if sharedB && !transA {
            // Shared weights: fold the batch into M, one GEMM.
            run(aPtr, bPtr, biasPtr, out.pointer(as: Float.self), 1, batch * m, n, k, false, transB, accumulate)
        } else if sharedB {
            let es = type == .bfloat16 ? 2 : 4
            for i in 0..<batch {
                run(aPtr + i * m * k * es, bPtr, biasPtr, out.pointer(as: Float.self) + i * m * n,
                    1, m, n, k, true, transB, accumulate)
            }
        } else {
            run(aPtr, bPtr, biasPtr, out.pointer(as: Float.self), batch, m, n, k, transA, transB, accumulate)
        }
    }

    // MARK: Rows and reductions

    public func reduce(_ op: ReduceOp, _ x: Tensor, _ view: AxisView, _ out: Tensor) {
        tape(x, out) { $0.reduce(op, $1[0]!, view, $1[1]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        reduceKernel(op, x.pointer(as: Float.self), view, out.pointer(as: Float.self))
    }

    public func softmax(_ x: Tensor, _ y: Tensor, rows: Int, cols: Int, log: Bool) {
        tape(x, y) { $0.softmax($1[0]!, $1[1]!, rows: rows, cols: cols, log: log) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        softmaxForward(x.pointer(as: Float.self), y.pointer(as: Float.self), rows: rows, cols: cols, log: log)
    }

    public func softmaxBackward(y: Tensor, dy: Tensor, dx: Tensor, rows: Int, cols: Int, log: Bool) {
        tape(y, dy, dx) { $0.softmaxBackward(y: $1[0]!, dy: $1[1]!, dx: $1[2]!, rows: rows, cols: cols, log: log) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        NanoCPU.softmaxBackward(y.pointer(as: Float.self), dy.pointer(as: Float.self), dx.pointer(as: Float.self),
                                rows: rows, cols: cols, log: log)
    }

    public func cumsum(_ x: Tensor, _ view: AxisView, _ out: Tensor, reverse: Bool) {
        tape(x, out) { $0.cumsum($1[0]!, view, $1[1]!, reverse: reverse) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        cumsumKernel(x.pointer(as: Float.self), view, out.pointer(as: Float.self), reverse: reverse)
    }

    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, y: Tensor, mean: Tensor, rstd: Tensor,
                          rows: Int, cols: Int) {
        tape(x, weight, bias, y, mean, rstd, rows: layerNormRowKernel(x, weight: weight, bias: bias, eps: eps, y: y, mean: mean, rstd: rstd,
                                                                    rows: rows, cols: cols)) { $0.layerNorm($1[0]!, weight: $1[1], bias: $1[2], eps: eps, y: $1[3]!, mean: $1[4]!, rstd: $1[5]!, rows: rows, cols: cols) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        layerNormForward(x.pointer(as: Float.self), weight.map { UnsafePointer($0.pointer(as: Float.self)) },
                         bias.map { UnsafePointer($0.pointer(as: Float.self)) }, eps: eps, y.pointer(as: Float.self),
                         mean.pointer(as: Float.self), rstd.pointer(as: Float.self), rows: rows, cols: cols)
    }

    private func layerNormRowKernel(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, y: Tensor, mean: Tensor, rstd: Tensor,
                                    rows: Int, cols: Int) -> RowKernel {
        let (xp, yp, mp, rp) = (x.pointer(as: Float.self), y.pointer(as: Float.self), mean.pointer(as: Float.self), rstd.pointer(as: Float.self))
        let (wp, bp) = (weight.map { UnsafePointer($0.pointer(as: Float.self)) }, bias.map { UnsafePointer($0.pointer(as: Float.self)) })
        return RowKernel(rows: rows, costPerRow: cols * 6, reads: [access(x, cols: cols)] + [weight, bias].compactMap { $0.map { access($0, cols: 0) } },
                         writes: [access(y, cols: cols), access(mean, cols: 1), access(rstd, cols: 1)]) { r in
            layerNormRows(r, xp, wp, bp, eps: eps, yp, mp, rp, cols: cols)
        }
    }

    public func layerNormBackward(_ x: Tensor, weight: Tensor?, mean: Tensor, rstd: Tensor, dy: Tensor, dx: Tensor,
                                  dweight: Tensor?, dbias: Tensor?, rows: Int, cols: Int) {
        tape(x, weight, mean, rstd, dy, dx, dweight, dbias) { $0.layerNormBackward($1[0]!, weight: $1[1], mean: $1[2]!, rstd: $1[3]!, dy: $1[4]!, dx: $1[5]!, dweight: $1[6], dbias: $1[7], rows: rows, cols: cols) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        NanoCPU.layerNormBackward(x.pointer(as: Float.self), weight.map { UnsafePointer($0.pointer(as: Float.self)) },
                                  mean.pointer(as: Float.self), rstd.pointer(as: Float.self), dy.pointer(as: Float.self),
                                  dx.pointer(as: Float.self), dweight?.pointer(as: Float.self), dbias?.pointer(as: Float.self),
                                  rows: rows, cols: cols)
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, y: Tensor, rstd: Tensor, rows: Int, cols: Int) {
        tape(x, weight, y, rstd) { $0.rmsNorm($1[0]!, weight: $1[1], eps: eps, y: $1[2]!, rstd: $1[3]!, rows: rows, cols: cols) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        rmsNormForward(x.pointer(as: Float.self), weight.map { UnsafePointer($0.pointer(as: Float.self)) }, eps: eps,
                       y.pointer(as: Float.self), rstd.pointer(as: Float.self), rows: rows, cols: cols)
    }

    public func rmsNormBackward(_ x: Tensor, weight: Tensor?, rstd: Tensor, dy: Tensor, dx: Tensor, dweight: Tensor?,
                                rows: Int, cols: Int) {
        tape(x, weight, rstd, dy, dx, dweight) { $0.rmsNormBackward($1[0]!, weight: $1[1], rstd: $1[2]!, dy: $1[3]!, dx: $1[4]!, dweight: $1[5], rows: rows, cols: cols) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        NanoCPU.layerNormBackward(x.pointer(as: Float.self), weight.map { UnsafePointer($0.pointer(as: Float.self)) },
                                  rstd.pointer(as: Float.self), rstd.pointer(as: Float.self), dy.pointer(as: Float.self),
                                  dx.pointer(as: Float.self), dweight?.pointer(as: Float.self), nil,
                                  rows: rows, cols: cols, rmsOnly: true)
    }

    // MARK: Attention and loss

    public func attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, _ shape: AttentionShape) {
        tape(q, k, v, out, lse) { $0.attention(q: $1[0]!, k: $1[1]!, v: $1[2]!, out: $1[3]!, lse: $1[4]!, shape) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        attentionForward(q.pointer(as: Float.self), k.pointer(as: Float.self), v.pointer(as: Float.self),
                         out.pointer(as: Float.self), lse.pointer(as: Float.self), shape)
    }

    public func attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                                  dq: Tensor, dk: Tensor, dv: Tensor, _ shape: AttentionShape) {
        tape(q, k, v, out, lse, dout, dq, dk, dv) { $0.attentionBackward(q: $1[0]!, k: $1[1]!, v: $1[2]!, out: $1[3]!, lse: $1[4]!, dout: $1[5]!, dq: $1[6]!, dk: $1[7]!, dv: $1[8]!, shape) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        NanoCPU.attentionBackward(q.pointer(as: Float.self), k.pointer(as: Float.self), v.pointer(as: Float.self),
                                  out.pointer(as: Float.self), lse.pointer(as: Float.self), dout.pointer(as: Float.self),
                                  dq.pointer(as: Float.self), dk.pointer(as: Float.self), dv.pointer(as: Float.self), shape)
    }

    public func crossEntropy(logits: Tensor, targets: Tensor, losses: Tensor, lse: Tensor, rows: Int, classes: Int,
                             ignoreIndex: Int32) {
        tape(logits, targets, losses, lse) { $0.crossEntropy(logits: $1[0]!, targets: $1[1]!, losses: $1[2]!, lse: $1[3]!, rows: rows, classes: classes, ignoreIndex: ignoreIndex) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        crossEntropyForward(logits.pointer(as: Float.self), targets.pointer(as: Int32.self), losses.pointer(as: Float.self),
                            lse.pointer(as: Float.self), rows: rows, classes: classes, ignoreIndex: ignoreIndex)
    }

    public func crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, dlogits: Tensor, scale: Float, scaleBy: Tensor?,
                                     rows: Int, classes: Int, ignoreIndex: Int32) {
        tape(logits, targets, lse, dlogits, scaleBy) { $0.crossEntropyBackward(logits: $1[0]!, targets: $1[1]!, lse: $1[2]!, dlogits: $1[3]!, scale: scale, scaleBy: $1[4], rows: rows, classes: classes, ignoreIndex: ignoreIndex) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        NanoCPU.crossEntropyBackward(logits.pointer(as: Float.self), targets.pointer(as: Int32.self), lse.pointer(as: Float.self),
                                     dlogits.pointer(as: Float.self), scale: scale * (scaleBy.map { $0.pointer(as: Float.self)[0] } ?? 1),
                                     rows: rows, classes: classes,
                                     ignoreIndex: ignoreIndex)
    }

    // MARK: Indexing

    public func indexSelect(_ x: Tensor, _ view: AxisView, index: Tensor, _ out: Tensor) {
        tape(x, index, out) { $0.indexSelect($1[0]!, view, index: $1[1]!, $1[2]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        indexSelectKernel(x.rawPointer, view, index.pointer(as: Int32.self), index.count, out.rawPointer, elementSize: x.dtype.size)
    }

    public func indexAdd(_ src: Tensor, index: Tensor, _ out: Tensor, _ outView: AxisView) {
        tape(src, index, out) { $0.indexAdd($1[0]!, index: $1[1]!, $1[2]!, outView) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        indexAddKernel(src.pointer(as: Float.self), index.pointer(as: Int32.self), index.count, out.pointer(as: Float.self), outView)
    }

    public func gather(_ x: Tensor, _ view: AxisView, index: Tensor, _ out: Tensor, indexAxis: Int) {
        tape(x, index, out) { $0.gather($1[0]!, view, index: $1[1]!, $1[2]!, indexAxis: indexAxis) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        gatherKernel(x.pointer(as: Float.self), view, index.pointer(as: Int32.self), out.pointer(as: Float.self), indexAxis: indexAxis)
    }

    public func scatterAdd(_ src: Tensor, index: Tensor, indexAxis: Int, _ out: Tensor, _ outView: AxisView) {
        tape(src, index, out) { $0.scatterAdd($1[0]!, index: $1[1]!, indexAxis: indexAxis, $1[2]!, outView) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        scatterAddKernel(src.pointer(as: Float.self), index.pointer(as: Int32.self), indexAxis: indexAxis,
                         out.pointer(as: Float.self), outView)
    }

    public func topK(_ x: Tensor, rows: Int, cols: Int, k: Int, values: Tensor, indices: Tensor) {
        tape(x, values, indices) { $0.topK($1[0]!, rows: rows, cols: cols, k: k, values: $1[1]!, indices: $1[2]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        topKKernel(x.pointer(as: Float.self), rows: rows, cols: cols, k: k, values.pointer(as: Float.self),
                   indices.pointer(as: Int32.self))
    }

    public func adamW(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, _ h: AdamWStep) {
        tape(param, grad, m, v) { $0.adamW(param: $1[0]!, grad: $1[1]!, m: $1[2]!, v: $1[3]!, h) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        adamWKernel(param.pointer(as: Float.self), grad.pointer(as: Float.self), m.pointer(as: Float.self),
                    v.pointer(as: Float.self), param.count, h)
    }

    public func adamW(_ tensors: [AdamWTensors], hyper: Tensor, gradScale: Tensor) {
        recording?.record(self, [hyper, gradScale] + tensors.flatMap { [$0.param, $0.grad, $0.m, $0.v] }, name: "adamW") { b, t in
            let groups = stride(from: 2, to: t.count, by: 4).map { AdamWTensors(param: t[$0]!, grad: t[$0 + 1]!, m: t[$0 + 2]!, v: t[$0 + 3]!) }
            b.adamW(groups, hyper: t[0]!, gradScale: t[1]!)
        }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        let h = AdamWStep(deviceLayout: hyper.pointer(as: Float.self)), f = gradScale.pointer(as: Float.self)[0]
        for t in tensors {
            let g = t.grad.pointer(as: Float.self)
            if f != 1 { for i in 0..<t.grad.count { g[i] = g[i] * f } }   // as clipping's scaleInPlace
            adamWKernel(t.param.pointer(as: Float.self), g, t.m.pointer(as: Float.self), t.v.pointer(as: Float.self), t.param.count, h)
        }
    }

    public func gradientNorm(_ tensors: [Tensor], into out: Tensor) {
        recording?.record(self, [out] + tensors, name: "gradientNorm") { b, t in b.gradientNorm(t.dropFirst().map { $0! }, into: t[0]!) }
        if recordOnly { return }   // recording a graph: the kernel runs on replay
        let total = tensors.reduce(0.0) { $0 + sumOfSquaresKernel($1.pointer(as: Float.self), $1.count) }
        out.pointer(as: Float.self)[0] = Float(total.squareRoot())
    }

    public func sumOfSquares(_ x: Tensor) -> Double {
        refuseReadWhileRecordingGraph("sumOfSquares")
        return sumOfSquaresKernel(x.pointer(as: Float.self), x.count)
    }

    public func indexRange(_ index: Tensor) -> (min: Int32, max: Int32) {
        if recordingGraph { return (0, 0) }   // as a GPU recording a graph: nothing is read back
        let p = index.pointer(as: Int32.self)
        var lo = Int32.max, hi = Int32.min
        for i in 0..<index.count { lo = min(lo, p[i]); hi = max(hi, p[i]) }
        return (lo, hi)
    }
}
