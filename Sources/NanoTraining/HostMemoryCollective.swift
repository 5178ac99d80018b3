import NanoDistributed
import NanoEngine

/// The device collective of a device whose memory is host memory: the CPU backend standing in
/// for a GPU (`CPUBackend(standingIn:)`, `NANODECODER_STAND_IN_DEVICE=1`). It all-reduces the
/// "device" buckets in place with MPI, so multi-process tests on machines without GPUs run the
/// same bucket path that NCCL runs on GPUs. Blocking: each reduction is done when it returns.
public final class HostMemoryCollective: DeviceCollective {
    public let device: Device
    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    public var name: String { "MPI on \(device)'s host memory (stand-in for NCCL)" }
    private let communicator: Communicator

    public init(device: Device, communicator: Communicator) {
        self.device = device
        self.communicator = communicator
    }

    public func allReduceSum(_ t: Tensor) throws {
        guard t.device == device, t.dtype == .float32 else {
            throw TensorError.invalidArgument(op: "HostMemoryCollective.allReduceSum", message: "expected float32 on \(device), got \(t.dtype) on \(t.device)")
        }
        try communicator.allReduceSum(t.pointer(as: Float.self), count: t.count)
    }

    public func waitForReductions() throws {}
}
