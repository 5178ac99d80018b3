import NanoCPU
import NanoDistributed
import NanoEngine

/// The device collective of a device whose memory is host memory: the CPU backend standing in
/// for a GPU (`CPUBackend(standingIn:)`, `NANODECODER_STAND_IN_DEVICE=1`). It all-reduces the
/// "device" buckets in place with MPI, so multi-process tests on machines without GPUs run the
/// same bucket path that NCCL runs on GPUs. Reductions run in the backend's kernel order
/// (`CPUBackend.runInKernelOrder`): at once in eager mode, at each replay when a graph recorded
/// them, where a failure is kept for `checkForErrors`, as NCCL keeps its asynchronous errors.
public final class HostMemoryCollective: DeviceCollective {
    public let device: Device
    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    public var name: String { "MPI on \(device)'s host memory (stand-in for NCCL)" }
    public var recordsInGraphs: Bool { true }
    private let communicator: Communicator
    private var failure: Error?

    public init(device: Device, communicator: Communicator) {
        self.device = device
        self.communicator = communicator
    }

    public func allReduceSum(_ t: Tensor) throws {
        try run("allReduceSum", [t]) { [communicator] in try communicator.allReduceSum($0[0].pointer(as: Float.self), count: $0[0].count) }
    }

    public func reduceScatterSum(_ t: Tensor, into shard: Tensor) throws {
        guard t.count == shard.count * size else {
            throw TensorError.invalidArgument(op: "HostMemoryCollective.reduceScatterSum", message: "\(t.shape) does not split into \(size) shards of \(shard.shape)")
        }
        // Open MPI's reduce-scatter is slower than its all-reduce (see ZeroOneAdamW): reduce the whole, keep a shard.
        try run("reduceScatterSum", [t, shard]) { [communicator] in
            try communicator.allReduceSum($0[0].pointer(as: Float.self), count: $0[0].count)
            $0[1].pointer(as: Float.self).update(from: $0[0].pointer(as: Float.self) + communicator.rank * $0[1].count, count: $0[1].count)
        }
    }

    public func allGather(_ part: Tensor, into all: Tensor) throws {
        guard all.count == part.count * size else {
            throw TensorError.invalidArgument(op: "HostMemoryCollective.allGather", message: "\(size) parts of \(part.shape) do not make \(all.shape)")
        }
        try run("allGather", [part, all]) { [communicator] tensors in
            // MPI forbids overlapping send and receive buffers: an in-place part is sent from a copy.
            let send = Array(UnsafeBufferPointer(start: tensors[0].pointer(as: Float.self), count: tensors[0].count))
            try send.withUnsafeBufferPointer { buffer in
                try communicator.allGather(send: buffer.baseAddress!, receive: tensors[1].pointer(as: Float.self), countPerRank: buffer.count)
            }
        }
    }

    /// Runs an MPI call on float32 tensors of this device in the backend's kernel order.
    private func run(_ op: String, _ tensors: [Tensor], _ call: @escaping ([Tensor]) throws -> Void) throws {
        guard tensors.allSatisfy({ $0.device == device && $0.dtype == .float32 }), let backend = try device.backend as? CPUBackend else {
            throw TensorError.invalidArgument(op: "HostMemoryCollective.\(op)", message: "expected float32 on \(device) (a CPU stand-in), got "
                                              + tensors.map { "\($0.dtype) on \($0.device)" }.joined(separator: ", "))
        }
        try checkForErrors()
        backend.runInKernelOrder(tensors, name: op) { [weak self] tensors in
            guard self?.failure == nil else { return }
            do { try call(tensors) } catch { self?.failure = error }
        }
        try checkForErrors()
    }

    public func waitForReductions() throws { try checkForErrors() }

    public func checkForErrors() throws {
        if let failure { throw failure }
    }
}
