import ArgumentParser
import Foundation
import NanoEngine
import NanoTracking
import NanoTraining

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a dense GPT from a YAML config.")

    @Option(help: "YAML config (sections model, training, lr_schedule, optimizer, data, output).") var config: String?
    @Option(name: .customLong("set"), help: "Override a key: section.key=value (repeatable).") var overrides: [String] = []
    @Flag(help: "Continue from the run folder's last checkpoint.") var resume = false
    @Flag(help: "Start over in a run folder that already holds a checkpoint (replaces it).") var overwrite = false
    @Option(help: "Data-parallel processes on this machine (runs mpirun itself; or launch with mpirun/srun directly).") var nproc: Int?
    @Option(help: "cpu, cuda or cuda:N (the config's device.type).") var device: String?

    func run() throws {
        if let device { _ = try CUDACommand.device(device) }
        try DistributedLaunch.relaunchIfNeeded(nproc: nproc)
        try Nanodecoder.reporting {
            var cfg = try TrainConfig.load(file: config, overrides: overrides + (device.map { ["device.type=\($0)"] } ?? []))
            if case .cuda(let ordinal) = cfg.trainingDevice { try CUDACommand.registerBackend(ordinal: ordinal, tf32: cfg.tf32) }
            if cfg.name.isEmpty {
                let f = DateFormatter()
                f.dateFormat = "yyyyMMdd-HHmmss"
                cfg.name = f.string(from: Date())
            }
            try DistributedLaunch.run { communicator in
                let runDir = try Self.prepareRunFolder(cfg, resume: resume, overwrite: overwrite, isRoot: communicator.rank == 0)
                let collective = try CUDACommand.deviceCollective(device: cfg.trainingDevice, mode: cfg.collective, communicator: communicator)
                if let collective, communicator.rank == 0 { emit("gradients: \(collective.name)") }
                try Self.drive(Trainer(config: cfg, runDir: runDir, communicator: communicator, deviceCollective: collective), resume: resume)
            }
        }
    }

    /// `out_dir/name`, refusing to replace an existing checkpoint unless asked to.
    static func prepareRunFolder(_ cfg: TrainConfig, resume: Bool, overwrite: Bool, isRoot: Bool = true) throws -> String {
        let runDir = cfg.outDir + "/" + cfg.name
        let fm = FileManager.default
        if !resume && fm.fileExists(atPath: runDir + "/checkpoint") {
            guard overwrite else {
                throw ValidationError("\(runDir) already holds a checkpoint: pass --resume to continue it, --overwrite to start over, or choose another output.name")
            }
            if isRoot { for item in ["checkpoint", "best", "metrics.jsonl"] { try? fm.removeItem(atPath: runDir + "/" + item) } }
        }
        return runDir
    }

    /// Runs a trainer with a progress bar, Ctrl-C handling and optional resume.
    static func drive(_ trainer: Trainer, resume: Bool) throws {
        let bar = ProgressBar("train", total: trainer.config.maxIters, unit: "steps",
                              terminal: trainer.isRoot && isatty(STDERR_FILENO) == 1 && isatty(STDOUT_FILENO) == 1)
        trainer.log = trainer.isRoot ? { line in bar.clear(); emit(line); bar.redraw() } : { _ in }
        trainer.onStep = { step, _ in bar.update(step) }
        defer { bar.finish() }
        if resume { try trainer.resume() }
        trainer.stop.install()
        if trainer.isRoot { emit("run folder: \(trainer.runDir)") }
        try trainer.train()
    }
}
