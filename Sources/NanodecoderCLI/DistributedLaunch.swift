import ArgumentParser
import Foundation
import NanoCPU
import NanoDistributed

/// Multi-process runs from the command line: `--nproc N` re-runs this very command under
/// `mpirun -np N`, and each rank joins the MPI job it was started in.
enum DistributedLaunch {
    /// With `nproc` > 1 and not yet inside an MPI job, replaces this process by
    /// `mpirun -np N <this executable> <same arguments without --nproc>`; returns otherwise.
    static func relaunchIfNeeded(nproc: Int?) throws {
        guard let nproc, nproc > 1, !MPILauncher.launchedByMPI else {
            if let nproc, nproc < 1 { throw ValidationError("--nproc must be ≥ 1, got \(nproc)") }
            return
        }
        var arguments = Array(CommandLine.arguments.dropFirst())
        if let i = arguments.firstIndex(of: "--nproc") {
            arguments.removeSubrange(i...min(i + 1, arguments.count - 1))
        } else if let i = arguments.firstIndex(where: { $0.hasPrefix("--nproc=") }) {
            arguments.remove(at: i)
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let stopFile = NSTemporaryDirectory() + "nanodecoder-stop-\(getpid())"
        setenv("NANODECODER_STOP_FILE", stopFile, 1)
        let (mpirun, args) = try MPILauncher.mpirunArguments(nproc: nproc, executable: executable, arguments: arguments)
        emit("launching \(nproc) ranks: \(([mpirun] + args).joined(separator: " "))")
        let status = try supervise(mpirun, args, stopFile: stopFile)
        try? FileManager.default.removeItem(atPath: stopFile)
        exit(status)
    }

    /// Runs mpirun as a child and waits for it. Ctrl-C (or SIGTERM) here creates `stopFile`, which
    /// rank 0 checks every step: all ranks then stop at the same step and save a checkpoint
    /// (mpirun itself would kill the ranks on SIGINT). A second Ctrl-C interrupts mpirun.
    static func supervise(_ mpirun: String, _ args: [String], stopFile: String) throws -> Int32 {
        let argv: [UnsafeMutablePointer<CChar>?] = ([mpirun] + args).map { strdup($0) } + [nil]
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with no blocked signals and default handlers (the Swift runtime's
        // threads run with signals blocked, and exec would keep that mask).
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, mpirun, nil, &attributes, argv, environ)
        guard rc == 0 else { throw CommandFailure(description: "could not start \(mpirun): \(String(cString: strerror(rc)))") }
        let child = pid
        let interrupts = ManagedAtomicCounter()
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if interrupts.increment() == 1 {
                    _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
                    FileHandle.standardError.write(Data("\nstopping all ranks after this step: writing a checkpoint (Ctrl-C again to quit now)\n".utf8))
                } else {
                    kill(child, SIGINT)
                }
            }
            source.resume()
            sources.append(source)
        }
        var status: Int32 = 0
        while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        sources.forEach { $0.cancel() }
        let exited = status & 0x7f == 0
        return exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// A counter the signal handlers share.
private final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}

extension DistributedLaunch {
    /// Runs `body` with this process's communicator. Under MPI, an error on any rank is printed
    /// with the rank and ends the whole job (MPI_Abort), so no rank waits forever for it.
    static func run(_ body: (Communicator) throws -> Void) throws {
        let communicator = try Communicator.fromEnvironment()
        guard communicator.isDistributed else { return try body(communicator) }
        // Ranks on one machine share its cores: each gets its share for the Swift kernels and
        // oneDNN's OpenMP (unless set explicitly), instead of every rank using them all.
        let env = ProcessInfo.processInfo.environment
        let local = Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? env["SLURM_NTASKS_PER_NODE"] ?? "") ?? communicator.size
        if env["NANODECODER_THREADS"] == nil {
            Parallel.threads = max(1, ProcessInfo.processInfo.activeProcessorCount / max(local, 1))
        }
        if env["OMP_NUM_THREADS"] == nil { setenv("OMP_NUM_THREADS", String(Parallel.threads), 1) }
        do {
            try body(communicator)
            try communicator.finalize()
        } catch {
            let text = String(describing: error)
            FileHandle.standardError.write(Data("Error (rank \(communicator.rank) of \(communicator.size)): \(text)\n".utf8))
            communicator.abort(code: 1)
        }
    }
}
