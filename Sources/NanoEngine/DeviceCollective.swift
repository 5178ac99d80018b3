/// A collective library that reduces tensors where they live, in a device's own memory (NCCL on
/// NVIDIA GPUs), so data-parallel gradients need not travel through host memory.
///
/// Reductions are stream-ordered, like the device's kernels: `allReduceSum` only enqueues, and
/// `waitForReductions` makes the device's later work wait for every reduction enqueued so far,
/// without blocking the host. Every rank must enqueue the same reductions in the same order.
public protocol DeviceCollective: AnyObject {
    /// The device whose tensors this collective reduces.
    var device: Device { get }
    /// This process's rank and the number of ranks.
    var rank: Int { get }
    var size: Int { get }
    /// What it is, for logs ("NCCL 2.21.5", ...).
    var name: String { get }

    /// Replaces contiguous tensor `t` (on `device`) with its elementwise sum over all ranks,
    /// once the work already enqueued on the device has produced it.
    func allReduceSum(_ t: Tensor) throws

    /// Writes into contiguous `shard` (on `device`, 1/size of `t`'s elements) this rank's part of
    /// the elementwise sum of `t` over all ranks: rank r gets elements r·n ..< (r+1)·n (ZeRO-1).
    /// `t` may be overwritten.
    func reduceScatterSum(_ t: Tensor, into shard: Tensor) throws

    /// Writes into contiguous `all` (size × `part`'s elements) every rank's `part`, in rank order.
    /// `part` may be this rank's place in `all` (in place, as NCCL allows).
    func allGather(_ part: Tensor, into all: Tensor) throws

    /// Makes work enqueued on the device from now on wait for every reduction enqueued so far.
    func waitForReductions() throws

    /// Whether reductions enqueued while the device records a graph (`GraphCapturing`) join the
    /// graph and run at each replay, so a data-parallel step can be recorded whole.
    var recordsInGraphs: Bool { get }

    /// Throws the error of a reduction that failed after it was enqueued (NCCL's asynchronous
    /// errors; a reduction inside a replayed graph). Every rank calls it after each step.
    func checkForErrors() throws
}
