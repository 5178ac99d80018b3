import Foundation

/// What a run folder says about one training run, for `nanodecoder runs`-style listings.
public struct RunSummary: Sendable, Equatable {
    /// Where a run stands.
    public enum Status: String, Sendable, CaseIterable {
        /// The last evaluation happened at the configured `max_iters`.
        case finished
        /// Not finished and not written to for a while: interrupted, crashed or killed.
        case stopped
        /// Not finished and metrics.jsonl changed within the last minute.
        case running
        /// metrics.jsonl holds no readable line yet.
        case empty
    }

    /// The run folder's name.
    public var name: String
    /// The run folder.
    public var path: String
    /// The lowest validation loss logged (from metrics.jsonl, else from checkpoint/state.json).
    public var bestValLoss: Double?
    /// The highest step logged.
    public var steps: Int
    /// The most training tokens logged.
    public var tokens: Int
    /// `training.max_iters` from the run's config.yaml, when it can be read.
    public var maxIters: Int?
    public var status: Status
    /// When metrics.jsonl was last modified.
    public var lastUpdated: Date
    /// Lines of metrics.jsonl that were skipped as unreadable.
    public var warnings: [String]

    public init(name: String, path: String, bestValLoss: Double?, steps: Int, tokens: Int, maxIters: Int?,
                status: Status, lastUpdated: Date, warnings: [String] = []) {
        self.name = name
        self.path = path
        self.bestValLoss = bestValLoss
        self.steps = steps
        self.tokens = tokens
        self.maxIters = maxIters
        self.status = status
        self.lastUpdated = lastUpdated
        self.warnings = warnings
    }
}

/// Finds and summarises the runs under a log directory (`runs/` by default in the CLI).
public enum RunIndex {
    /// A run whose metrics changed within this many seconds counts as running.
    public static let runningWindow: TimeInterval = 60

    /// Summaries of every direct subfolder of `logDirectory` that holds a metrics.jsonl, most recently updated first.
    /// - Throws: `RunIndexError.notADirectory` when `logDirectory` is missing or not a folder.
    public static func list(logDirectory: String, now: Date = Date()) throws -> [RunSummary] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: logDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RunIndexError.notADirectory(path: logDirectory)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: logDirectory)
        let runs = names.sorted().compactMap { name in
            summarize(runDirectory: (logDirectory as NSString).appendingPathComponent(name), now: now)
        }
        return runs.sorted { ($0.lastUpdated, $1.name) > ($1.lastUpdated, $0.name) }
    }

    /// The summary of one run folder, or nil when it has no metrics.jsonl.
    public static func summarize(runDirectory: String, now: Date = Date()) -> RunSummary? {
        let fileManager = FileManager.default
        let metricsPath = (runDirectory as NSString).appendingPathComponent("metrics.jsonl")
        guard let attributes = try? fileManager.attributesOfItem(atPath: metricsPath),
              attributes[.type] as? FileAttributeType == .typeRegular else { return nil }
        let lastUpdated = attributes[.modificationDate] as? Date ?? .distantPast
        let metrics = (try? MetricsFile(path: metricsPath))
            ?? MetricsFile(contents: "", path: metricsPath)
        let configPath = (runDirectory as NSString).appendingPathComponent("config.yaml")
        let maxIters = (try? String(contentsOfFile: configPath, encoding: .utf8)).flatMap(maxIters(fromConfig:))
        let state = CheckpointState.read(from: (runDirectory as NSString).appendingPathComponent("checkpoint/state.json"))

        let status: RunSummary.Status
        if metrics.records.isEmpty {
            status = .empty
        } else if let maxIters, metrics.lastEvalStep == maxIters {
            status = .finished
        } else if now.timeIntervalSince(lastUpdated) < runningWindow {
            // Checked before the checkpoint: a live run saves checkpoints well short of max_iters.
            status = .running
        } else {
            status = .stopped
        }
        return RunSummary(
            name: (runDirectory as NSString).lastPathComponent,
            path: runDirectory,
            bestValLoss: metrics.bestValLoss ?? state?.bestValLoss,
            steps: metrics.lastStep ?? state?.step ?? 0,
            tokens: metrics.lastTokens ?? state?.tokensSeen ?? 0,
            maxIters: maxIters,
            status: status,
            lastUpdated: lastUpdated,
            warnings: metrics.warnings)
    }

    /// Reads `max_iters:` from config.yaml text with a one-key line scan (no YAML parser needed).
    public static func maxIters(fromConfig text: String) -> Int? {
        for line in text.split(whereSeparator: \.isNewline) {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = content.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("max_iters:") else { continue }
            let value = trimmed.dropFirst("max_iters:".count)
                .trimmingCharacters(in: CharacterSet.whitespaces.union(CharacterSet(charactersIn: "\"'")))
            return Int(value)
        }
        return nil
    }

    /// An aligned text table of `runs`, one row each, for the terminal.
    public static func table(_ runs: [RunSummary], now: Date = Date()) -> String {
        let header = ["NAME", "STATUS", "STEPS", "TOKENS", "BEST VAL", "UPDATED"]
        let rightAligned: Set<Int> = [2, 3, 4, 5]
        let rows = runs.map { run in
            [
                run.name,
                run.status.rawValue,
                run.maxIters.map { "\(run.steps)/\($0)" } ?? "\(run.steps)",
                formatCount(run.tokens),
                run.bestValLoss.map { String(format: "%.4f", $0) } ?? "-",
                formatAge(now.timeIntervalSince(run.lastUpdated)),
            ]
        }
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        let lines = all.map { row in
            row.indices.map { column in
                let padding = String(repeating: " ", count: widths[column] - row[column].count)
                return rightAligned.contains(column) ? padding + row[column] : row[column] + padding
            }
            .joined(separator: "  ")
            .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return lines.joined(separator: "\n") + (runs.isEmpty ? "\n(no runs)\n" : "\n")
    }

    /// 1536000 -> "1.54M".
    static func formatCount(_ count: Int) -> String {
        let value = Double(count)
        for (unit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] where value >= unit {
            return String(format: "%.2f", value / unit) + suffix
        }
        return "\(count)"
    }

    /// 75 -> "1m ago".
    static func formatAge(_ seconds: TimeInterval) -> String {
        let s = max(0, Int(seconds))
        switch s {
        case ..<60: return "\(s)s ago"
        case ..<3600: return "\(s / 60)m ago"
        case ..<86_400: return "\(s / 3600)h ago"
        default: return "\(s / 86_400)d ago"
        }
    }
}

/// Why a log directory could not be listed.
public enum RunIndexError: Error, Equatable, CustomStringConvertible {
    case notADirectory(path: String)

    public var description: String {
        switch self {
        case .notADirectory(let path): "no run directory at \(path)"
        }
    }
}

/// The fields of checkpoint/state.json a listing needs; the rest of the file is ignored.
private struct CheckpointState: Decodable {
    var step: Int?
    var bestValLoss: Double?
    var tokensSeen: Int?

    static func read(from path: String) -> CheckpointState? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(CheckpointState.self, from: data)
    }
}
