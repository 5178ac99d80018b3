import ArgumentParser
import Foundation
import NanoTracking
import NanoTraining

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List training runs with their best val loss, steps, tokens and status.",
                                                    subcommands: [RunsList.self, RunsWandb.self], defaultSubcommand: RunsList.self)
}

struct RunsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the runs in a log folder.")
    @Option(help: "Folder holding run folders.") var logdir: String = "runs"

    func run() throws {
        try Nanodecoder.reporting {
            let runs = try RunIndex.list(logDirectory: logdir)
            emit(runs.isEmpty ? "no runs in \(logdir)" : RunIndex.table(runs), terminator: runs.isEmpty ? "\n" : "")
            for run in runs { for warning in run.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) } }
        }
    }
}

struct RunsWandb: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wandb",
        abstract: "Print (or run, with --execute) the `wandb sync` command that uploads a run's TensorBoard events to W&B.")
    @Argument(help: "Run folder, e.g. runs/shakespeare-char.") var runFolder: String
    @Option(help: "W&B project (default: tracking.wandb.project from the run's config.yaml).") var project: String?
    @Option(help: "W&B entity.") var entity: String?
    @Flag(help: "Run the command instead of printing it (needs `pip install wandb` and a login).") var execute = false

    func run() throws {
        try Nanodecoder.reporting {
            let config = try? TrainConfig.load(file: runFolder + "/config.yaml")
            let command = wandbSyncCommand(runDirectory: runFolder, project: project ?? config?.wandbProject ?? "",
                                           entity: entity ?? config?.wandbEntity ?? "",
                                           name: config.map { $0.wandbName.isEmpty ? $0.name : $0.wandbName } ?? "")
            guard execute else { emit(command); return }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["sh", "-c", command]
            try p.run()
            p.waitUntilExit()
            if p.terminationStatus != 0 { throw ValidationError("`\(command)` failed with status \(p.terminationStatus)") }
        }
    }
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Plot runs (loss vs steps and tokens, lr, tokens/s) as SVG, overlaid.")
    @Argument(help: "Run folders.") var runs: [String]
    @Option(help: "Output folder (default: the first run's plots/ folder).") var out: String?

    func run() throws {
        try Nanodecoder.reporting {
            guard let first = runs.first else { throw ValidationError("name at least one run folder") }
            let loaded = try runs.map { run -> (name: String, metrics: MetricsFile) in
                let file = try MetricsFile(path: run + "/metrics.jsonl")
                for warning in file.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
                return ((run as NSString).lastPathComponent, file)
            }
            let folder = out ?? first + "/plots"
            let files = try SVGPlot.writeStandardPlots(runs: loaded, to: folder)
            for file in files { emit(SVGPlot.convertToPNG(file).map { "\(file) (+ \(($0 as NSString).lastPathComponent))" } ?? file) }
        }
    }
}
