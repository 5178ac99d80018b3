import NanoEngine

/// The CPU's graphs are kernel tapes: `captureGraph` records every kernel `body` launches (with
/// the data of host writes) without running it, as a GPU records a CUDA graph, pins the memory
/// they use, and `replay` runs them without the Swift code around them. This mainly serves a CPU
/// backend standing in for a GPU (`init(standingIn:)`), so the code that drives CUDA graphs is
/// tested without one; CPU training itself uses `CompiledStep`, which also fuses row-wise kernels.
extension CPUBackend: GraphCapturing {
    /// True inside `captureGraph` (not while `CompiledStep` records, which reads values freely).
    public var isRecordingGraph: Bool { recordingGraph }

    /// A GPU records without running, so a value read while recording would be stale: the CPU
    /// refuses such reads the same way, so tests on the stand-in catch them.
    func refuseReadWhileRecordingGraph(_ what: String) {
        if recordingGraph { fatalError("\(device): \(what) while recording a graph; the recorded code must not read device values") }
    }

    public func captureGraph(_ body: () throws -> Void) throws -> any DeviceGraph {
        guard recording == nil else {
            throw TensorError.invalidArgument(op: "captureGraph", message: "\(device) is already recording")
        }
        let tape = KernelTape()
        recording = tape
        recordingGraph = true
        recordOnly = true
        defer { recording = nil; recordingGraph = false; recordOnly = false }
        try body()
        tape.endSegment()
        return TapeGraph(tape: tape, backend: self)
    }

    /// Runs host work on `tensors` in kernel order: now, and at each replay when a recording
    /// holds it; only at replay while a graph is recorded (as a GPU stream would run it). The
    /// stand-in collective's MPI reductions go through here, so a recorded data-parallel step
    /// reduces its gradients at every replay.
    public func runInKernelOrder(_ tensors: [Tensor], name: String, _ work: @escaping ([Tensor]) -> Void) {
        recording?.record(self, tensors, name: name) { _, aliases in work(aliases.map { $0! }) }
        if !recordOnly { work(tensors) }
    }
}

/// A recorded `KernelTape` as a `DeviceGraph`: its memory stays pinned while it lives.
final class TapeGraph: DeviceGraph {
    private let tape: KernelTape
    private let backend: CPUBackend

    init(tape: KernelTape, backend: CPUBackend) {
        self.tape = tape
        self.backend = backend
        backend.allocator.pin(tape.blocks)
    }

    deinit { backend.allocator.unpin(tape.blocks) }

    var summary: String { "kernel tape of \(tape.count) kernels" }

    func replay() throws {
        if tape.count > 0 { tape.replay(segment: 0) }
    }
}
