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
        let (mpirun, args) = try MPILauncher.mpirunArguments(nproc: nproc, executable: executable, arguments: arguments)
        emit("launching \(nproc) ranks: \(([mpirun] + args).joined(separator: " "))")
        let argv: [UnsafeMutablePointer<CChar>?] = ([mpirun] + args).map { strdup($0) } + [nil]
        execv(mpirun, argv)
        throw CommandFailure(description: "could not start \(mpirun): \(String(cString: strerror(errno)))")
    }

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
