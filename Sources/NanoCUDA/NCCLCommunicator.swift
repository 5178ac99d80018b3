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
        let type = try checked("ncclAllReduce", t, t, count: t.count)
        let p = t.rawPointer
        try enqueue("ncclAllReduce(\(t.count) \(t.dtype))") { library.allReduce(p, p, t.count, type, 0 /* ncclSum */, comm, $0) }
    }

    public func reduceScatterSum(_ t: Tensor, into shard: Tensor) throws {
        let type = try checked("ncclReduceScatter", t, shard, count: shard.count * size)
        try enqueue("ncclReduceScatter(\(t.count) \(t.dtype))") {
            library.reduceScatter(t.rawPointer, shard.rawPointer, shard.count, type, 0 /* ncclSum */, comm, $0)
        }
    }

    public func allGather(_ part: Tensor, into all: Tensor) throws {
        let type = try checked("ncclAllGather", all, part, count: part.count * size)
        try enqueue("ncclAllGather(\(part.count) \(part.dtype))") { library.allGather(part.rawPointer, all.rawPointer, part.count, type, comm, $0) }
    }

    /// NCCL's type for a collective on contiguous `whole` (`count` elements) and `part` (same
    /// dtype, on this communicator's device), or an error naming the call.
    private func checked(_ call: String, _ whole: Tensor, _ part: Tensor, count: Int) throws -> Int32 {
        guard whole.device == device, part.device == device else {
            throw NCCLError(call: call, code: 4, message: "tensors on \(whole.device) and \(part.device), communicator on \(device)")
        }
        guard whole.dtype == part.dtype, whole.count == count, let type = NCCLLibrary.dataType(whole.dtype) else {
            throw NCCLError(call: call, code: 4, message: "expected float32/bfloat16/float16/int32 tensors of \(count) and \(count / size) elements "
                            + "(\(size) ranks), got \(whole.dtype) \(whole.shape) and \(part.dtype) \(part.shape)")
        }
        return type
    }

    /// Enqueues a collective on the communicator's stream, after the kernels enqueued so far.
    private func enqueue(_ call: String, _ collective: (OpaquePointer?) -> Int32) throws {
        try stream.waitForDefaultStream()
        try library.check(call, collective(stream.handle), comm: comm)
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
