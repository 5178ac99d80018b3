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
        guard t.device == device, t.dtype == .float32, let backend = try device.backend as? CPUBackend else {
            throw TensorError.invalidArgument(op: "HostMemoryCollective.allReduceSum", message: "expected float32 on \(device) (a CPU stand-in), got \(t.dtype) on \(t.device)")
        }
        try checkForErrors()
        backend.runInKernelOrder([t], name: "allReduceSum") { [communicator, weak self] tensors in
            guard self?.failure == nil else { return }
            do { try communicator.allReduceSum(tensors[0].pointer(as: Float.self), count: tensors[0].count) } catch { self?.failure = error }
        }
        try checkForErrors()
    }

    public func waitForReductions() throws { try checkForErrors() }

    public func checkForErrors() throws {
        if let failure { throw failure }
    }
}
