import Foundation
import NanoEngine

extension NCCLUniqueId {
    /// The id every rank of a job agrees on: rank 0 makes it and `broadcast` (MPI_Bcast from
    /// rank 0, called on every rank) hands its bytes to the others.
    public static func agreed(rank: Int, library: NCCLLibrary, broadcast: (inout [UInt8]) throws -> Void) throws -> NCCLUniqueId {
        var bytes = rank == 0 ? try library.uniqueId().bytes : [UInt8](repeating: 0, count: byteCount)
        try broadcast(&bytes)
        return try NCCLUniqueId(bytes: bytes)
    }
}

/// One rank's NCCL communicator on its GPU: data-parallel gradient all-reduces in device memory.
///
/// Reductions run on a non-blocking stream of their own (`CUDAStream`), each after the kernels
/// that filled its buffer, so backward's remaining kernels on the default stream run while
/// earlier buckets travel; `waitForReductions` makes the default stream wait for them, and the
/// host never blocks. While a graph is recorded the reductions join it (the stream forks from
/// the capture stream and joins it again) and run at each replay. Written against nccl.h; run on
/// the emulated GPU's stand-in NCCL, not yet on GPUs (see the README's table).
public final class NCCLCommunicator: DeviceCollective {
    public let device: Device
    public let rank: Int
    public let size: Int
    public var name: String { "NCCL \(library.version)" }
    private let library: NCCLLibrary
    private let backend: CUDABackend
    private let comm: OpaquePointer
    private let stream: CUDAStream
    private var pending = false
    /// Set once the communicator was aborted after an asynchronous NCCL error.
    private var aborted = false

    /// Joins the `size`-rank communicator `id` as `rank` on `backend`'s GPU; blocks until every
    /// rank has joined (NCCL's own bootstrap, over TCP).
    public init(library: NCCLLibrary, backend: CUDABackend, rank: Int, size: Int, id: NCCLUniqueId) throws {
        self.library = library
        self.backend = backend
        self.rank = rank
        self.size = size
        device = backend.device
        try backend.gpu.makeCurrent()
        stream = try CUDAStream(context: backend.gpu)
        comm = try library.initRank(size: size, id: id, rank: rank)
    }

    deinit {
        if aborted { return }
        // Graph replays run its reductions on the kernel stream, not on `stream`: wait for all.
        try? backend.gpu.synchronize()
        _ = library.commDestroy(comm)
    }

    public func allReduceSum(_ t: Tensor) throws {
        guard t.device == device else {
            throw NCCLError(call: "ncclAllReduce", code: 4, message: "tensor on \(t.device), communicator on \(device)")
        }
        guard let type = NCCLLibrary.dataType(t.dtype) else {
            throw NCCLError(call: "ncclAllReduce", code: 4, message: "expected a float32/bfloat16/float16/int32 tensor, got \(t.dtype) \(t.shape)")
        }
        try stream.waitForDefaultStream()
        let p = t.rawPointer
        try library.check("ncclAllReduce(\(t.count) \(t.dtype))",
                          library.allReduce(p, p, t.count, type, 0 /* ncclSum */, comm, stream.handle), comm: comm)
        pending = true
    }

    public func waitForReductions() throws {
        try checkForErrors()
        guard pending else { return }
        try stream.makeDefaultStreamWait()
        pending = false
    }

    /// NCCL records its collectives into CUDA graphs since 2.9.
    public var recordsInGraphs: Bool { library.versionCode >= 20900 }

    public func checkForErrors() throws {
        guard !aborted else { throw NCCLError(call: "ncclAllReduce", code: 5, message: "the communicator was aborted after an earlier error") }
        var asyncError: Int32 = 0
        try library.check("ncclCommGetAsyncError", library.asyncError(comm, &asyncError), comm: comm)
        if asyncError != 0 {
            // A failed collective leaves the communicator unusable: abort it (destroy could hang).
            defer { _ = library.commAbort(comm); aborted = true }
            try library.check("an earlier NCCL reduction", asyncError, comm: comm)
        }
    }
}
