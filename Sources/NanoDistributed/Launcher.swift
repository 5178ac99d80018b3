import Foundation

/// Starting a multi-process job with Open MPI's `mpirun`, and telling whether this process is part of one.
public enum MPILauncher {
    /// `true` when this process was started by `mpirun`/`mpiexec` (Open MPI or another PMI/PMIx
    /// launcher) or by `srun` with more than one task. `NANODECODER_MPI=0` forces `false`,
    /// `NANODECODER_MPI=1` forces `true` (a one-process MPI job).
    public static var launchedByMPI: Bool { isLaunchedByMPI(environment: ProcessInfo.processInfo.environment) }

    /// `launchedByMPI` for a given environment.
    public static func isLaunchedByMPI(environment env: [String: String]) -> Bool {
        switch env["NANODECODER_MPI"]?.lowercased() {
        case "0", "off", "false", "no": return false
        case "1", "on", "true", "yes": return true
        default: break
        }
        if env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil { return true }
        // Inside an sbatch script SLURM_NTASKS counts the allocation, not this process's step:
        // prefer the step's task count, which only srun sets.
        if env["SLURM_PROCID"] != nil, let tasks = Int(env["SLURM_STEP_NUM_TASKS"] ?? env["SLURM_NTASKS"] ?? "") {
            return tasks > 1
        }
        return false
    }

    /// The `mpirun` command line that runs `executable arguments…` as `nproc` ranks on this machine.
    ///
    /// Adds `--allow-run-as-root` when running as root (mpirun refuses otherwise),
    /// `--oversubscribe` when `nproc` exceeds the cores (mpirun refuses otherwise), and `-x NAME`
    /// for every `NANODECODER_*` variable set here so ranks on other hosts see them too.
    /// Unless `NANODECODER_THREADS` is set, it passes `NANODECODER_THREADS=cores/nproc` (at least 1):
    /// with `-np ≤ 2` mpirun binds each rank to one core, and Foundation's `activeProcessorCount`
    /// ignores that binding, so each rank would otherwise start a worker per core of the machine.
    /// `mpiOptions` go before `-np` (e.g. `["--bind-to", "none"]`, or `["--mca", name, value]`).
    /// - Returns: the path of `mpirun` and its arguments (without the program name itself).
    /// - Throws: `MPIError.mpirunNotFound` (with install instructions), `MPIError.invalidArgument` for `nproc < 1`.
    public static func mpirunArguments(nproc: Int, executable: String, arguments: [String],
                                       mpiOptions: [String] = []) throws -> (path: String, args: [String]) {
        guard nproc >= 1 else {
            throw MPIError.invalidArgument(function: "mpirunArguments", message: "nproc must be at least 1, got \(nproc)")
        }
        let env = ProcessInfo.processInfo.environment
        let path = try findMpirun(environment: env)
        var args: [String] = []
        if geteuid() == 0 { args.append("--allow-run-as-root") }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if nproc > cores { args.append("--oversubscribe") }
        for name in env.keys.sorted() where name.hasPrefix("NANODECODER_") && name != "NANODECODER_MPIRUN" {
            args += ["-x", name]
        }
        if env["NANODECODER_THREADS"] == nil { args += ["-x", "NANODECODER_THREADS=\(max(1, cores / nproc))"] }
        args += mpiOptions
        args += ["-np", String(nproc), executable] + arguments
        return (path, args)
    }

    /// `$NANODECODER_MPIRUN`, else the first `mpirun` on `PATH`, else Debian's `/usr/bin/mpirun`.
    static func findMpirun(environment env: [String: String]) throws -> String {
        let files = FileManager.default
        if let custom = env["NANODECODER_MPIRUN"], !custom.isEmpty {
            guard files.isExecutableFile(atPath: custom) else { throw MPIError.mpirunNotFound(searched: [custom]) }
            return custom
        }
        var searched: [String] = []
        let directories = (env["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = (directory as NSString).appendingPathComponent("mpirun")
            if searched.contains(candidate) { continue }
            searched.append(candidate)
            if files.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw MPIError.mpirunNotFound(searched: searched)
    }
}
