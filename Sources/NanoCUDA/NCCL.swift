import CNCCLShim
import Foundation
import NanoEngine

/// An NCCL call that failed: the call, NCCL's result code and its own words for it.
public struct NCCLError: Error, CustomStringConvertible {
    public var call: String, code: Int32, message: String
    public var description: String { "\(call) failed: \(message) (ncclResult \(code))" }
}

/// NCCL's 128-byte communicator id: rank 0 makes one (`NCCLLibrary.uniqueId()`), every rank must
/// receive it (over MPI: see `NCCLCommunicator.bootstrap`) before they open the communicator.
public struct NCCLUniqueId: Equatable, Sendable {
    public static let byteCount = 128
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.byteCount else {
            throw NCCLError(call: "NCCLUniqueId", code: 4, message: "expected \(Self.byteCount) bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }
}

/// NCCL (`libnccl.so.2`: a CUDA installation, or the `nvidia/nccl/lib` of a Python environment
/// with NVIDIA's wheels, as PyTorch installs it), loaded at run time like every CUDA library.
/// Only what data parallelism needs: ids, communicators, all-reduce, and the reduce-scatter and
/// all-gather of ZeRO-1.
public final class NCCLLibrary {
    typealias GetVersion = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    typealias GetUniqueId = @convention(c) (UnsafeMutableRawPointer) -> Int32
    typealias CommDestroy = @convention(c) (OpaquePointer?) -> Int32
    typealias CommAsyncError = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Int32
    typealias AllReduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, OpaquePointer?) -> Int32
    typealias ReduceScatter = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, OpaquePointer?) -> Int32
    typealias AllGather = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, OpaquePointer?, OpaquePointer?) -> Int32
    typealias ErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?
    typealias LastError = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?

    /// NCCL's version as one number (22105 for 2.21.5) and as text.
    public let versionCode: Int
    public var version: String {
        // NCCL_VERSION_CODE: major·10000 + minor·100 + patch since 2.9, major·1000 + minor·100 + patch before.
        versionCode >= 20900 ? "\(versionCode / 10000).\(versionCode / 100 % 100).\(versionCode % 100)"
                             : "\(versionCode / 1000).\(versionCode / 100 % 10).\(versionCode % 100)"
    }

    let getUniqueId: GetUniqueId, commDestroy: CommDestroy, commAbort: CommDestroy, asyncError: CommAsyncError
    let allReduce: AllReduce, reduceScatter: ReduceScatter, allGather: AllGather
    /// ncclCommInitRank, called through `nd_nccl_comm_init_rank` (its id is passed by value).
    let commInitRank: UnsafeMutableRawPointer
    private let errorString: ErrorString, lastError: LastError?

    /// Loads NCCL; throws a `CUDALibraryError` naming every folder searched when it is missing.
    /// NCCL needs a GPU only to open a communicator: loading it and making ids work without one.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let sym = try CUDALibraryLoader.symbols(["libnccl.so.2", "libnccl.so"], environment: environment)
        errorString = try sym("ncclGetErrorString", ErrorString.self)
        lastError = try? sym("ncclGetLastError", LastError.self)   // NCCL 2.13 and newer
        getUniqueId = try sym("ncclGetUniqueId", GetUniqueId.self)
        commDestroy = try sym("ncclCommDestroy", CommDestroy.self)
        commAbort = try sym("ncclCommAbort", CommDestroy.self)
        asyncError = try sym("ncclCommGetAsyncError", CommAsyncError.self)
        allReduce = try sym("ncclAllReduce", AllReduce.self)
        reduceScatter = try sym("ncclReduceScatter", ReduceScatter.self)
        allGather = try sym("ncclAllGather", AllGather.self)
        guard let initRank = dlsym(sym.handle, "ncclCommInitRank") else {
            throw CUDALibraryError(library: "libnccl.so.2", searched: [], reason: "symbol ncclCommInitRank missing (library too old?)")
        }
        commInitRank = initRank
        var code: Int32 = 0
        let result = try sym("ncclGetVersion", GetVersion.self)(&code)
        versionCode = Int(code)
        try check("ncclGetVersion", result)
    }

    /// Throws an `NCCLError` with NCCL's message (and its last detailed error) for a failed call.
    func check(_ call: String, _ code: Int32, comm: OpaquePointer? = nil) throws {
        guard code != 0 else { return }
        var message = errorString(code).map { String(cString: $0) } ?? "unknown error"
        if let lastError, let detail = lastError(comm).map({ String(cString: $0) }), !detail.isEmpty { message += ": " + detail }
        throw NCCLError(call: call, code: code, message: message)
    }

    /// A fresh communicator id (rank 0 makes it; the others receive it).
    public func uniqueId() throws -> NCCLUniqueId {
        var bytes = [UInt8](repeating: 0, count: NCCLUniqueId.byteCount)
        try bytes.withUnsafeMutableBytes { try check("ncclGetUniqueId", getUniqueId($0.baseAddress!)) }
        return try NCCLUniqueId(bytes: bytes)
    }

    /// NCCL's element type for an engine dtype.
    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .float32: return 7   // ncclFloat32
        case .bfloat16: return 9  // ncclBfloat16
        case .float16: return 6   // ncclFloat16
        case .int32: return 2     // ncclInt32
        default: return nil
        }
    }
}

extension NCCLLibrary {
    /// Opens a communicator of `size` ranks on the current device (blocks until all have joined).
    func initRank(size: Int, id: NCCLUniqueId, rank: Int) throws -> OpaquePointer {
        var comm: UnsafeMutableRawPointer? = nil
        var raw = nd_nccl_unique_id()
        withUnsafeMutableBytes(of: &raw) { dst in dst.copyBytes(from: id.bytes) }
        try check("ncclCommInitRank(rank \(rank) of \(size))", nd_nccl_comm_init_rank(commInitRank, &comm, Int32(size), &raw, Int32(rank)))
        guard let comm else { throw NCCLError(call: "ncclCommInitRank", code: 3, message: "returned no communicator") }
        return OpaquePointer(comm)
    }
}
