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
    /// Segment boundaries: kernels[segments[i] ..< segments[i + 1]] is segment i.
    private var segments: [Int] = [0]
    /// Memory blocks the kernels read or write: base pointer → byte count.
    public private(set) var blocks: [UnsafeMutableRawPointer: Int] = [:]

    public init() {}

    /// Number of recorded kernels.
    public var count: Int { kernels.count }

    /// Records one kernel call: `kernel(backend, aliases)` replays it on aliases of `tensors`.
    public func record<B: AnyObject>(_ backend: B, _ tensors: [Tensor?], _ kernel: @escaping (B, [Tensor?]) -> Void) {
        let aliases = tensors.map { $0.map(alias) }
        kernels.append { kernel(backend, aliases) }
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
}
