/// A recording of the kernels a stretch of code launched on a backend, for replay without the
/// code: no graph is built, no tensor is allocated, no shape is checked again. This is what a
/// compiled training step (`compile: true`) replays; a GPU backend can turn the same recording
/// into a CUDA graph.
///
/// The recorded kernels hold *aliases* of their tensors (same memory, not owning it), so tensors
/// freed during the recorded stretch give their memory back to the allocator as usual and later
/// tensors of the same stretch reuse it: the recording inherits eager mode's liveness-based
/// buffer reuse. Whoever replays must keep every block in `blocks` from being handed to anyone
/// else afterwards (the CPU backend's allocator pins them).
///
/// Replay is only correct when the recorded code would launch the same kernels with the same
/// arguments again: same shapes, no decision taken on values read back to the host (MoE routing),
/// no fresh random numbers (dropout). New inputs are written into the recorded input tensors.
public final class KernelTape {
    private var kernels: [() -> Void] = []
    /// The recorded kernels' names (the backend method that launched each, or "a+b" for a fused chain), in order.
    public private(set) var names: [String] = []
    /// Per kernel: its row form when it has one (candidates for `fuseRowChains`).
    private var rowForms: [RowKernel?] = []
    /// Segment boundaries: kernels[segments[i] ..< segments[i + 1]] is segment i.
    private var segments: [Int] = [0]
    /// Memory blocks the kernels read or write: base pointer → byte count.
    public private(set) var blocks: [UnsafeMutableRawPointer: Int] = [:]

    public init() {}

    /// Number of recorded kernels.
    public var count: Int { kernels.count }

    /// Records one kernel call: `kernel(backend, aliases)` replays it on aliases of `tensors`.
    public func record<B: AnyObject>(_ backend: B, _ tensors: [Tensor?], name: String = "kernel", rows: RowKernel? = nil,
                                     _ kernel: @escaping (B, [Tensor?]) -> Void) {
        let aliases = tensors.map { $0.map(alias) }
        kernels.append { kernel(backend, aliases) }
        names.append(String(name.prefix { $0 != "(" }))
        rowForms.append(rows)
    }

    /// Closes the current segment, so it can be replayed on its own (e.g. one micro-step, with
    /// its inputs written just before).
    public func endSegment() {
        if segments.last != kernels.count { segments.append(kernels.count) }
    }

    /// Runs segment i's kernels in recorded order.
    public func replay(segment i: Int) {
        for k in kernels[segments[i]..<segments[i + 1]] { k() }
    }

    /// A tensor over the same memory that does not keep it alive.
    public func alias(_ t: Tensor) -> Tensor {
        blocks[t.storage.pointer] = t.storage.byteCount
        let storage = Storage(pointer: t.storage.pointer, byteCount: t.storage.byteCount, device: t.device, allocator: nil)
        return Tensor(shape: t.shape, dtype: t.dtype, storage: storage, offset: t.offset, backend: t.backend)
    }

    /// Fuses chains of adjacent row kernels (`RowKernel`) into one kernel each: the chain runs
    /// a few rows at a time, every kernel of it on those rows before the next rows, so what one
    /// kernel writes is still in cache when the next reads it, and the chain costs one parallel
    /// launch instead of one per kernel (residual add → LayerNorm; GELU backward → GELU again).
    /// Kernels join a chain only when they have the same row count and every memory they share
    /// with the chain is split into the same rows (so row r depends only on row r), and never
    /// across segments. `parallel(rows, costPerRow, body)` splits rows over the threads.
    /// Returns the number of kernels fused away.
    @discardableResult
    public func fuseRowChains(parallel: @escaping (Int, Int, @escaping @Sendable (Range<Int>) -> Void) -> Void) -> Int {
        var newKernels: [() -> Void] = [], newNames: [String] = [], newForms: [RowKernel?] = [], newSegments = [0]
        for s in 0..<(segments.count - 1) {
            var i = segments[s]
            while i < segments[s + 1] {
                var chain = [i]
                if let first = rowForms[i] {
                    while let last = chain.last, last + 1 < segments[s + 1], let next = rowForms[last + 1],
                          next.rows == first.rows, chain.allSatisfy({ rowForms[$0]!.rowAligned(with: next) }) {
                        chain.append(last + 1)
                    }
                }
                if chain.count == 1 {
                    newKernels.append(kernels[i]); newNames.append(names[i]); newForms.append(rowForms[i])
                } else {
                    let forms = chain.map { rowForms[$0]! }
                    let rows = forms[0].rows, cost = forms.reduce(0) { $0 + $1.costPerRow }
                    // Blocks of about 32 KB of the widest row: they stay in L1/L2 between the kernels.
                    let widest = forms.flatMap { $0.reads + $0.writes }.map(\.rowBytes).max() ?? 0
                    let block = max(1, 32_768 / max(1, widest))
                    let runs = forms.map(\.run)
                    newKernels.append {
                        parallel(rows, cost) { r in
                            var lo = r.lowerBound
                            while lo < r.upperBound {
                                let hi = min(lo + block, r.upperBound)
                                for run in runs { run(lo..<hi) }
                                lo = hi
                            }
                        }
                    }
                    newNames.append(chain.map { names[$0] }.joined(separator: "+"))
                    newForms.append(nil)
                }
                i = chain.last! + 1
            }
            newSegments.append(newKernels.count)
        }
        let fused = kernels.count - newKernels.count
        (kernels, names, rowForms, segments) = (newKernels, newNames, newForms, newSegments)
        return fused
    }
}

/// A kernel whose work splits into independent rows: `run(r)` does rows r on the calling thread
/// and touches, of each memory it lists, only the bytes of those rows (a row of an access with
/// `rowBytes` 0 is the whole access: a vector every row reads, such as a LayerNorm weight).
public struct RowKernel {
    public struct Access {
        public let base: UnsafeRawPointer, bytes: Int, rowBytes: Int
        public init(_ base: UnsafeRawPointer, bytes: Int, rowBytes: Int) { (self.base, self.bytes, self.rowBytes) = (base, bytes, rowBytes) }

        func overlaps(_ o: Access) -> Bool { base < o.base + o.bytes && o.base < base + bytes }
        /// The same memory split into the same rows.
        func sameRows(_ o: Access) -> Bool { base == o.base && bytes == o.bytes && rowBytes == o.rowBytes && rowBytes > 0 }
    }

    public let rows: Int, costPerRow: Int
    public let reads: [Access], writes: [Access]
    public let run: @Sendable (Range<Int>) -> Void

    public init(rows: Int, costPerRow: Int, reads: [Access], writes: [Access], run: @escaping @Sendable (Range<Int>) -> Void) {
        (self.rows, self.costPerRow, self.reads, self.writes, self.run) = (rows, costPerRow, reads, writes, run)
    }

    /// Whether `later` may run row block by row block interleaved with this kernel: whatever one
    /// writes and the other touches is the same memory split into the same rows.
    func rowAligned(with later: RowKernel) -> Bool {
        func compatible(_ writes: [Access], _ touched: [Access]) -> Bool {
            writes.allSatisfy { w in touched.allSatisfy { t in !w.overlaps(t) || w.sameRows(t) } }
        }
        return rows == later.rows && compatible(writes, later.reads + later.writes) && compatible(later.writes, reads + writes)
    }
}
