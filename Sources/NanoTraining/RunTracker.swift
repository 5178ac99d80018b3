import Foundation
import NanoTracking

/// Everything a run records: metrics.jsonl (one JSON object per step or evaluation), TensorBoard
/// event files beside it, samples.txt, and plots at the end.
final class RunTracker {
    let runDir: String
    let metrics: MetricsLog
    let tensorboard: TensorBoardWriter?

    init(runDir: String, config: TrainConfig) throws {
        self.runDir = runDir
        metrics = try MetricsLog(path: runDir + "/metrics.jsonl")
        tensorboard = config.tensorboard ? try TensorBoardWriter(logDirectory: runDir) : nil
        tensorboard?.text("config", "```\n" + config.yaml() + "```", step: 0)
    }

    /// Appends a record and mirrors every number as a TensorBoard scalar (arrays become one scalar per element).
    func record(_ fields: [String: Any]) throws {
        try metrics.append(fields)
        guard let tb = tensorboard, let step = fields["step"] as? Int else { return }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) where key != "step" {
            let tag = Self.tag(for: key)
            switch value {
            case let v as Float where v.isFinite: tb.scalar(tag, Double(v), step: step)
            case let v as Double where v.isFinite: tb.scalar(tag, v, step: step)
            case let v as Int: tb.scalar(tag, Double(v), step: step)
            case let list as [Int]: for (i, v) in list.enumerated() { tb.scalar("\(tag)/expert\(i)", Double(v), step: step) }
            default: break
            }
        }
    }

    /// TensorBoard groups tags by their first path component.
    static func tag(for key: String) -> String {
        switch key {
        case "train_loss", "lr", "grad_norm": return "train/" + key
        case "val_loss", "eval_train_loss", "hellaswag_acc_norm", "hellaswag_acc": return "eval/" + key
        case "tokens_per_s", "ms_per_iter", "mfu", "memory_mb", "tokens": return "perf/" + key
        case "aux_loss", "z_loss": return "moe/" + key
        default: return key.hasPrefix("moe") ? "moe/" + key.replacingOccurrences(of: ".", with: "/") : key
        }
    }

    /// A generated sample: samples.txt and a TensorBoard text summary.
    func sample(_ text: String, step: Int) {
        let entry = "=== step \(step) ===\n\(text)\n\n"
        if let h = FileHandle(forWritingAtPath: runDir + "/samples.txt") ?? {
            FileManager.default.createFile(atPath: runDir + "/samples.txt", contents: nil)
            return FileHandle(forWritingAtPath: runDir + "/samples.txt")
        }() {
            h.seekToEndOfFile()
            h.write(Data(entry.utf8))
            try? h.close()
        }
        tensorboard?.text("samples", text, step: step)
        tensorboard?.flush()
    }

    func flush() { tensorboard?.flush() }

    func finish() { tensorboard?.close() }

    /// SVG plots of this run (PNG beside them when a converter is installed).
    func writePlots(name: String) throws -> [String] {
        let metrics = try MetricsFile(path: runDir + "/metrics.jsonl")
        let files = try SVGPlot.writeStandardPlots(runs: [(name: name, metrics: metrics)], to: runDir + "/plots")
        for file in files { _ = SVGPlot.convertToPNG(file) }
        return files
    }
}

/// The command that uploads a run folder's TensorBoard events to Weights & Biases.
public func wandbSyncCommand(runDirectory: String, project: String, entity: String, name: String) -> String {
    var parts = ["wandb", "sync", "--sync-tensorboard"]
    if !project.isEmpty { parts += ["--project", project] }
    if !entity.isEmpty { parts += ["--entity", entity] }
    if !name.isEmpty { parts += ["--id", name] }
    parts.append(runDirectory)
    return parts.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
}

/// Appends one JSON object per line to metrics.jsonl.
final class MetricsLog {
    let handle: FileHandle
    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw FileFormatError.invalid(path: path, reason: "cannot open for writing") }
        h.seekToEndOfFile()
        handle = h
    }
    func append(_ fields: [String: Any]) throws {
        let clean = fields.mapValues { v -> Any in
            if let f = v as? Float { return f.isFinite ? Double(f) : NSNull() }
            if let d = v as? Double { return d.isFinite ? d : NSNull() }
            return v
        }
        var line = try JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys])
        line.append(0x0A)
        handle.write(line)
    }
}

/// Resident memory of this process in MB (Linux /proc; nil elsewhere).
func residentMemoryMB() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Double(fields[1]) else { return nil }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1e6
}
