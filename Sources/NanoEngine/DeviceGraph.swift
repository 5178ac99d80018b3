/// A backend that records a stretch of device work once and replays it as one unit: CUDA graphs
/// on NVIDIA GPUs (one launch for a whole training step's kernels), a `KernelTape` on the CPU.
public protocol GraphCapturing: Backend {
    /// Records the device work `body` enqueues without running it (a GPU records a CUDA graph; the
    /// CPU tapes its kernels): the work happens on `replay()`, each time. So `body` must not read
    /// device values on the host (they are not computed yet), and what it leaves behind is only
    /// allocated. Memory that tensors made inside `body` use stays reserved for the graph (the graph
    /// writes it on every replay), and host data written to the device inside `body` is kept with
    /// the graph.
    func captureGraph(_ body: () throws -> Void) throws -> any DeviceGraph
}

/// What recorded code promises about its data, where an op would otherwise read values back.
public enum GraphRecording {
    /// Cross-entropy targets contain no ignored entries (language-model pre-training batches), so
    /// the number of counted targets is the number of rows and needs no read-back while recording.
    @TaskLocal public static var targetsAreAllValid = false
}

/// Recorded device work (see `GraphCapturing`).
public protocol DeviceGraph: AnyObject {
    /// What was recorded, for logs ("CUDA graph of 1,234 nodes").
    var summary: String { get }
    /// Runs the recorded work again, on the same memory, after the work enqueued before it.
    func replay() throws
}
