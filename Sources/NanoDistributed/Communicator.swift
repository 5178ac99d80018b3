import Foundation

/// The processes of one training job (MPI_COMM_WORLD), or just this process when not launched
/// by `mpirun`/`srun`. Every collective also works, trivially, with `size == 1`, in which case
/// MPI is never loaded.
///
/// MPI is initialised with `MPI_THREAD_SERIALIZED`: any thread may call a collective, and a lock
/// makes the calls one at a time. Errors come back as `MPIError` (the world communicator uses
/// `MPI_ERRORS_RETURN`), and a blocking collective that takes longer than
/// `NANODECODER_COLLECTIVE_TIMEOUT` seconds (default 300, `0` turns it off) aborts the whole job
/// with a message instead of hanging; see `CollectiveWatchdog`.
public final class Communicator: @unchecked Sendable {
    /// This process's index, `0 ..< size`.
    public let rank: Int
    /// Number of processes in the job.
    public let size: Int
    /// `true` when there is more than one process, so collectives really communicate.
    public var isDistributed: Bool { size > 1 }
    /// The loaded Open MPI, or `nil` for a single process.
    public let library: MPILibrary?
    /// The thread level MPI granted (`MPI_THREAD_*`, 0 ... 3), or `nil` without MPI.
    public let threadLevel: Int32?
    /// The largest element count passed to one MPI call. MPI counts are `Int32`, so larger
    /// buffers are split; lower it only to test the splitting.
    public var maxElementsPerCall = Int(Int32.max)

    let world: MPIHandle?
    let watchdog: CollectiveWatchdog?
    private let lock = NSLock()
    private var isFinalized = false

    private nonisolated(unsafe) static var sharedWorld: Communicator?
    private static let sharedLock = NSLock()

    /// A communicator for a single process: rank 0 of 1, no MPI.
    public init() {
        rank = 0
        size = 1
        library = nil
        threadLevel = nil
        world = nil
        watchdog = nil
    }

    private init(library: MPILibrary, world: MPIHandle, rank: Int, size: Int, threadLevel: Int32) {
        self.library = library
        self.world = world
        self.rank = rank
        self.size = size
        self.threadLevel = threadLevel
        // A single process cannot wait on anyone, so only a real job gets a watchdog.
        watchdog = size > 1 ? CollectiveWatchdog(timeout: CollectiveWatchdog.timeoutFromEnvironment()) : nil
        watchdog?.onTimeout = { [unowned self] message in self.abortAfterTimeout(message) }
    }

    /// The job this process belongs to: MPI_COMM_WORLD when launched by `mpirun`/`srun` (see
    /// `MPILauncher.launchedByMPI`), otherwise a single-process communicator without loading MPI.
    /// Calling it again returns the same communicator.
    /// - Throws: `MPIError.libraryNotFound` when launched by a launcher but Open MPI is missing,
    ///   `MPIError.callFailed` when `MPI_Init_thread` fails.
    public static func fromEnvironment() throws -> Communicator {
        guard MPILauncher.launchedByMPI else { return Communicator() }
        return try world()
    }

    /// MPI_COMM_WORLD, initialising MPI on first use (also without a launcher: a singleton job).
    public static func world() throws -> Communicator {
        sharedLock.lock(); defer { sharedLock.unlock() }
        if let sharedWorld { return sharedWorld }
        let mpi = try MPILibrary.load()
        func check(_ code: Int32, _ function: String) throws {
            if code != 0 { throw MPIError.callFailed(function: function, code: code, message: mpi.message(for: code)) }
        }
        var flag: Int32 = 0
        try check(mpi.finalized(&flag), "MPI_Finalized")
        if flag != 0 { throw MPIError.finalized(function: "Communicator.world") }
        try check(mpi.initialized(&flag), "MPI_Initialized")
        var provided: Int32 = MPILibrary.threadSerialized
        if flag == 0 {
            MPITuning.applyDefaults()
            try check(mpi.initThread(nil, nil, MPILibrary.threadSerialized, &provided), "MPI_Init_thread")
        }
        // Return error codes instead of killing the job, so failures become Swift errors.
        try check(mpi.commSetErrhandler(mpi.commWorld, mpi.errorsReturn), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0, size: Int32 = 0
        try check(mpi.commRank(mpi.commWorld, &rank), "MPI_Comm_rank")
        try check(mpi.commSize(mpi.commWorld, &size), "MPI_Comm_size")
        let communicator = Communicator(library: mpi, world: mpi.commWorld, rank: Int(rank), size: Int(size),
                                        threadLevel: provided)
        sharedWorld = communicator
        return communicator
    }

    /// The longest one collective may block before the job is aborted, in seconds; `nil` means
    /// forever (and always for a single process). Set by `NANODECODER_COLLECTIVE_TIMEOUT`.
    public var collectiveTimeout: Double? { watchdog?.timeout }

    /// Runs `body` with another collective time limit (`nil`: wait forever), for phases where
    /// ranks legitimately wait on each other for long, such as a barrier while rank 0 writes
    /// a checkpoint or tokenizes a dataset.
    public func withCollectiveTimeout<T>(_ seconds: Double?, _ body: () throws -> T) rethrows -> T {
        guard let watchdog else { return try body() }
        let previous = watchdog.setTimeout(seconds)
        defer { watchdog.setTimeout(previous) }
        return try body()
    }

    /// Seconds since an arbitrary start (`MPI_Wtime`, or a monotonic clock without MPI).
    public func wallTime() -> Double {
        if let library { return library.wtime() }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
    }

    /// The host this rank runs on (`MPI_Get_processor_name`, or `gethostname`).
    public var processorName: String {
        if let library, let name = MPILibrary.readString({ library.getProcessorName($0, $1) }) { return name }
        return ProcessInfo.processInfo.hostName
    }

    /// Shuts MPI down; call it once on every rank at the end of the run. Later collectives throw.
    /// Does nothing for a single process or when already finalized.
    public func finalize() throws {
        guard let library else { return }
        lock.lock(); defer { lock.unlock() }
        guard !isFinalized else { return }
        isFinalized = true
        defer { watchdog?.stop() }
        var flag: Int32 = 0
        _ = library.finalized(&flag)
        if flag != 0 { return }
        // MPI_Finalize waits for every rank (a fence), so a rank that never gets here would hang it.
        watchdog?.arm("MPI_Finalize", bytes: 0)
        let code = library.finalize()
        watchdog?.disarm()
        if code != 0 { throw MPIError.callFailed(function: "MPI_Finalize", code: code, message: library.message(for: code)) }
    }

    /// Ends every process of the job with `code` (`MPI_Abort`); without MPI, exits this process.
    /// Use it when one rank fails, so the others do not wait forever in a collective.
    public func abort(code: Int32) -> Never {
        if let library, let world { _ = library.abort(world, code) }
        exit(code)
    }

    /// Runs one MPI call under the lock and turns a non-zero return into `MPIError.callFailed`.
    /// With `watch`, the collective watchdog aborts the job if the call outlives the timeout.
    func call(_ function: StaticString, bytes: Int = 0, watch: Bool = true,
              _ body: (MPILibrary, MPIHandle) -> Int32) throws {
        guard let library, let world else {
            preconditionFailure("\(function) called on a single-process communicator")
        }
        lock.lock(); defer { lock.unlock() }
        guard !isFinalized else { throw MPIError.finalized(function: "\(function)") }
        if watch { watchdog?.arm(function, bytes: bytes) }
        let code = body(library, world)
        if watch { watchdog?.disarm() }
        if code != 0 {
            throw MPIError.callFailed(function: "\(function)", code: code, message: library.message(for: code))
        }
    }

    /// Called on the watchdog thread while another thread is stuck inside MPI.
    private func abortAfterTimeout(_ message: String) {
        FileHandle.standardError.write(Data("[rank \(rank)/\(size)] \(message)\n".utf8))
        // MPI_Abort normally ends the job at once; if it cannot (the stuck thread holds MPI's
        // internals), dying still makes mpirun tear the job down.
        DispatchQueue.global().asyncAfter(deadline: .now() + 10) { _exit(CollectiveWatchdog.exitCode) }
        if let library, let world { _ = library.abort(world, CollectiveWatchdog.exitCode) }
        _exit(CollectiveWatchdog.exitCode)
    }
}
