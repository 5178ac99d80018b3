import Foundation

/// An MPI handle (`MPI_Comm`, `MPI_Datatype`, `MPI_Op`, `MPI_Request`, `MPI_Errhandler`).
/// In Open MPI every handle is a pointer, and the predefined ones are addresses of global symbols.
public typealias MPIHandle = OpaquePointer

/// Open MPI's `libmpi.so.40`, opened at run time with `dlopen` so that nothing MPI is needed to
/// build the binary, and single-process runs work on machines without MPI.
///
/// Only the Open MPI ABI is supported (4.x and 5.x share it): handles are pointers to
/// `ompi_mpi_*` globals, `MPI_IN_PLACE` is `(void *)1` and `MPI_STATUS_IGNORE` is `NULL`.
public final class MPILibrary: @unchecked Sendable {
    // C signatures from Open MPI's mpi.h; every `int` return is an MPI error code (0 = MPI_SUCCESS).
    typealias InitThreadFn = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>) -> Int32
    typealias FlagFn = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    typealias VoidFn = @convention(c) () -> Int32
    typealias CommIntFn = @convention(c) (MPIHandle?, UnsafeMutablePointer<Int32>) -> Int32
    /// MPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm).
    typealias ReduceFn = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, MPIHandle?, MPIHandle?, MPIHandle?) -> Int32
    typealias IReduceFn = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, MPIHandle?, MPIHandle?, MPIHandle?,
                                          UnsafeMutablePointer<MPIHandle?>) -> Int32
    /// MPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm).
    typealias AllgatherFn = @convention(c) (UnsafeRawPointer?, Int32, MPIHandle?, UnsafeMutableRawPointer?, Int32, MPIHandle?, MPIHandle?) -> Int32
    typealias IAllgatherFn = @convention(c) (UnsafeRawPointer?, Int32, MPIHandle?, UnsafeMutableRawPointer?, Int32, MPIHandle?, MPIHandle?,
                                             UnsafeMutablePointer<MPIHandle?>) -> Int32
    /// MPI_Bcast(buffer, count, datatype, root, comm).
    typealias BcastFn = @convention(c) (UnsafeMutableRawPointer?, Int32, MPIHandle?, Int32, MPIHandle?) -> Int32
    typealias CommFn = @convention(c) (MPIHandle?) -> Int32
    typealias IBarrierFn = @convention(c) (MPIHandle?, UnsafeMutablePointer<MPIHandle?>) -> Int32
    /// MPI_Wait(request, status) and MPI_Test(request, flag, status); status is always MPI_STATUS_IGNORE.
    typealias WaitFn = @convention(c) (UnsafeMutablePointer<MPIHandle?>, UnsafeMutableRawPointer?) -> Int32
    typealias TestFn = @convention(c) (UnsafeMutablePointer<MPIHandle?>, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer?) -> Int32
    typealias AbortFn = @convention(c) (MPIHandle?, Int32) -> Int32
    typealias WtimeFn = @convention(c) () -> Double
    typealias SetErrhandlerFn = @convention(c) (MPIHandle?, MPIHandle?) -> Int32
    /// MPI_Error_string, MPI_Get_processor_name and MPI_Get_library_version: (buffer, resultlen).
    typealias ErrorStringFn = @convention(c) (Int32, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32
    typealias StringFn = @convention(c) (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32

    /// `MPI_IN_PLACE` in Open MPI.
    static var inPlace: UnsafeRawPointer? { UnsafeRawPointer(bitPattern: 1) }
    /// `MPI_THREAD_SERIALIZED`: any thread may call MPI, one at a time (the communicator's lock ensures that).
    static let threadSerialized: Int32 = 2
    /// MPI_MAX_ERROR_STRING, MPI_MAX_PROCESSOR_NAME and MPI_MAX_LIBRARY_VERSION_STRING are all 256 in Open MPI 4.1.
    static let maxStringLength = 256

    /// Where the library was opened from.
    public let path: String
    let handle: UnsafeMutableRawPointer

    let initThread: InitThreadFn
    let initialized: FlagFn
    let finalized: FlagFn
    let finalize: VoidFn
    let commRank: CommIntFn
    let commSize: CommIntFn
    let allreduce: ReduceFn
    let iallreduce: IReduceFn
    let allgather: AllgatherFn
    let iallgather: IAllgatherFn?
    let bcast: BcastFn
    let barrier: CommFn
    let ibarrier: IBarrierFn?
    let wait: WaitFn
    let test: TestFn
    let abort: AbortFn
    let wtime: WtimeFn
    let commSetErrhandler: SetErrhandlerFn
    let errorString: ErrorStringFn
    let getProcessorName: StringFn
    let getLibraryVersion: StringFn?

    let commWorld: MPIHandle
    let float: MPIHandle
    let double: MPIHandle
    let byte: MPIHandle
    let int32: MPIHandle
    let uint64: MPIHandle
    let sum: MPIHandle
    let max: MPIHandle
    let min: MPIHandle
    let errorsReturn: MPIHandle

    /// Paths tried in order: the loader's search path, then Debian's locations. When
    /// `NANODECODER_MPI_LIBRARY` is set, only that path is tried, so a typo is an error rather
    /// than a silent switch to another MPI.
    public static var candidatePaths: [String] {
        if let custom = ProcessInfo.processInfo.environment["NANODECODER_MPI_LIBRARY"], !custom.isEmpty {
            return [custom]
        }
        return ["libmpi.so.40", "libmpi.so",
                "/usr/lib/x86_64-linux-gnu/libmpi.so.40",
                "/usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi.so",
                "/usr/lib/aarch64-linux-gnu/libmpi.so.40"]
    }

    private nonisolated(unsafe) static var cached: MPILibrary?
    private static let cacheLock = NSLock()

    /// Opens Open MPI once per process and resolves every symbol this module uses.
    /// - Throws: `MPIError.libraryNotFound` (with install instructions) or `MPIError.missingSymbol`.
    public static func load() throws -> MPILibrary {
        cacheLock.lock(); defer { cacheLock.unlock() }
        if let cached { return cached }
        var reasons: [String] = []
        let paths = candidatePaths
        for path in paths {
            // RTLD_GLOBAL is required: Open MPI's MCA plugins (mca_*.so) are opened later by libmpi
            // itself and resolve libmpi/libopen-pal symbols from the global namespace.
            if let handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL) {
                let library = try MPILibrary(handle: handle, path: path)
                cached = library
                return library
            }
            reasons.append(dlerror().map { String(cString: $0) } ?? "unknown dlopen error")
        }
        throw MPIError.libraryNotFound(tried: paths, reasons: reasons)
    }

    private init(handle: UnsafeMutableRawPointer, path: String) throws {
        self.handle = handle
        self.path = path
        func function<T>(_ name: String, as type: T.Type) throws -> T {
            guard let symbol = dlsym(handle, name) else { throw MPIError.missingSymbol(name: name, library: path) }
            return unsafeBitCast(symbol, to: T.self)
        }
        func optionalFunction<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: T.self) }
        }
        func object(_ names: String...) throws -> MPIHandle {
            for name in names { if let symbol = dlsym(handle, name) { return MPIHandle(symbol) } }
            throw MPIError.missingSymbol(name: names.joined(separator: " or "), library: path)
        }
        initThread = try function("MPI_Init_thread", as: InitThreadFn.self)
        initialized = try function("MPI_Initialized", as: FlagFn.self)
        finalized = try function("MPI_Finalized", as: FlagFn.self)
        finalize = try function("MPI_Finalize", as: VoidFn.self)
        commRank = try function("MPI_Comm_rank", as: CommIntFn.self)
        commSize = try function("MPI_Comm_size", as: CommIntFn.self)
        allreduce = try function("MPI_Allreduce", as: ReduceFn.self)
        iallreduce = try function("MPI_Iallreduce", as: IReduceFn.self)
        allgather = try function("MPI_Allgather", as: AllgatherFn.self)
        iallgather = optionalFunction("MPI_Iallgather", as: IAllgatherFn.self)
        bcast = try function("MPI_Bcast", as: BcastFn.self)
        barrier = try function("MPI_Barrier", as: CommFn.self)
        ibarrier = optionalFunction("MPI_Ibarrier", as: IBarrierFn.self)
        wait = try function("MPI_Wait", as: WaitFn.self)
        test = try function("MPI_Test", as: TestFn.self)
        abort = try function("MPI_Abort", as: AbortFn.self)
        wtime = try function("MPI_Wtime", as: WtimeFn.self)
        commSetErrhandler = try function("MPI_Comm_set_errhandler", as: SetErrhandlerFn.self)
        errorString = try function("MPI_Error_string", as: ErrorStringFn.self)
        getProcessorName = try function("MPI_Get_processor_name", as: StringFn.self)
        getLibraryVersion = optionalFunction("MPI_Get_library_version", as: StringFn.self)

        commWorld = try object("ompi_mpi_comm_world")
        float = try object("ompi_mpi_float")
        double = try object("ompi_mpi_double")
        byte = try object("ompi_mpi_byte")
        int32 = try object("ompi_mpi_int")
        uint64 = try object("ompi_mpi_uint64_t", "ompi_mpi_unsigned_long_long")
        sum = try object("ompi_mpi_op_sum")
        max = try object("ompi_mpi_op_max")
        min = try object("ompi_mpi_op_min")
        errorsReturn = try object("ompi_mpi_errors_return")
    }

    /// `MPI_Get_library_version`, e.g. "Open MPI v4.1.4, package: Debian OpenMPI, ...".
    public var version: String {
        guard let getLibraryVersion else { return "unknown MPI version" }
        return Self.readString { getLibraryVersion($0, $1) } ?? "unknown MPI version"
    }

    /// The text MPI gives for an error code.
    func message(for code: Int32) -> String {
        Self.readString { errorString(code, $0, $1) } ?? "unknown MPI error"
    }

    /// Calls a `(char *buffer, int *resultlen)` MPI function and returns the string.
    static func readString(_ body: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: maxStringLength + 1)
        var length: Int32 = 0
        let code = buffer.withUnsafeMutableBufferPointer { body($0.baseAddress!, &length) }
        guard code == 0 else { return nil }
        // Some implementations count the terminating NUL in `resultlen`; stop at the first one.
        let bytes = buffer.prefix(Int(Swift.max(0, Swift.min(length, Int32(maxStringLength)))))
            .prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
