import Foundation
import NanoTracking

/// The dashboard's read-only view of a log directory: every answer the JSON API gives, as Codable values.
///
/// Only run folders that `RunIndex` lists are ever opened, and only the fixed files inside them
/// (metrics.jsonl, config.yaml, samples.txt); a name is never joined into a path before it has been
/// matched against that listing.
public struct RunStore: Sendable {
    /// The folder whose direct subfolders are runs.
    public var logDirectory: String
    /// How much of the end of samples.txt the API returns.
    public var samplesTailBytes: Int
    /// Parsed metrics and summaries, kept until their files change: the page polls every few seconds,
    /// often while a trainer shares the machine.
    private let cache = RunCache()

    public init(logDirectory: String, samplesTailBytes: Int = 20_000) {
        self.logDirectory = logDirectory
        self.samplesTailBytes = samplesTailBytes
    }

    /// One row per run, most recently updated first, as `RunIndex.list` orders them; hidden (dot) folders
    /// are left out, as `run(named:)` refuses them.
    /// - Throws: `RunIndexError.notADirectory` when the log directory is missing.
    public func runs(now: Date = Date()) throws -> [RunRow] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: logDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RunIndexError.notADirectory(path: logDirectory)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: logDirectory)
        let runs = names.filter(Self.isPlainName).sorted().compactMap { summary(ofChild: $0, now: now) }
        return runs.sorted { ($0.lastUpdated, $1.name) > ($1.lastUpdated, $0.name) }.map { RunRow($0, now: now) }
    }

    /// The summary of the run called `name`, or nil unless `name` is a direct child folder that `RunIndex` lists.
    public func run(named name: String, now: Date = Date()) -> RunSummary? {
        guard Self.isPlainName(name),
              let children = try? FileManager.default.contentsOfDirectory(atPath: logDirectory),
              children.contains(name) else { return nil }
        return summary(ofChild: name, now: now)
    }

    private func summary(ofChild name: String, now: Date) -> RunSummary? {
        cache.summary(of: (logDirectory as NSString).appendingPathComponent(name), now: now)
    }

    /// Every scalar field of the run's metrics.jsonl as `[step, value]` pairs (`tokens` included).
    public func scalars(of run: RunSummary) throws -> ScalarsPayload {
        let metrics = try cache.metrics(at: file("metrics.jsonl", in: run))
        var series: [String: [[Double?]]] = [:]
        for field in metrics.fieldNames where field != "step" {
            let (steps, values) = metrics.series(field)
            series[field] = zip(steps, values).map { [$0, $1.isFinite ? $1 : nil] }
        }
        return ScalarsPayload(run: run.name, series: series, warnings: metrics.warnings)
    }

    /// Tokens routed to each expert, per logged step, for every MoE layer (`moeN.tokens_per_expert`).
    public func moe(of run: RunSummary) throws -> MoEPayload {
        let metrics = try cache.metrics(at: file("metrics.jsonl", in: run))
        var layers: [Int: MoELayerLoad] = [:]
        for record in metrics.records {
            for (key, counts) in record.arrays {
                guard let layer = Self.moeLayerIndex(key) else { continue }
                layers[layer, default: MoELayerLoad(layer: layer, name: "moe\(layer)", steps: [], tokensPerExpert: [])]
                    .append(step: record.step, counts: counts)
            }
        }
        return MoEPayload(run: run.name, layers: layers.keys.sorted().compactMap { layers[$0] })
    }

    /// The run's config.yaml as written.
    public func config(of run: RunSummary) throws -> TextPayload {
        let path = file("config.yaml", in: run)
        guard let data = FileManager.default.contents(atPath: path) else { throw DashboardError.missingFile("config.yaml", run: run.name) }
        return TextPayload(run: run.name, text: String(decoding: data, as: UTF8.self), truncated: false)
    }

    /// The last `samplesTailBytes` of the run's samples.txt.
    public func samples(of run: RunSummary) throws -> TextPayload {
        let path = file("samples.txt", in: run)
        guard let handle = FileHandle(forReadingAtPath: path) else { throw DashboardError.missingFile("samples.txt", run: run.name) }
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        let start = size > UInt64(samplesTailBytes) ? size - UInt64(samplesTailBytes) : 0
        try handle.seek(toOffset: start)
        let data = try handle.readToEnd() ?? Data()
        // A cut in the middle of a UTF-8 sequence decodes as a replacement character; acceptable for a preview.
        return TextPayload(run: run.name, text: String(decoding: data, as: UTF8.self), truncated: start > 0)
    }

    /// The config lines (flattened to dotted keys) whose values differ between two runs.
    public func configDiff(_ a: RunSummary, _ b: RunSummary) throws -> DiffPayload {
        let left = ConfigLines.flatten(try config(of: a).text)
        let right = ConfigLines.flatten(try config(of: b).text)
        let keys = (left.map(\.key) + right.map(\.key).filter { key in !left.contains { $0.key == key } })
        let leftValues = Dictionary(left, uniquingKeysWith: { _, last in last })
        let rightValues = Dictionary(right, uniquingKeysWith: { _, last in last })
        let changes = keys.compactMap { key -> DiffPayload.Change? in
            leftValues[key] == rightValues[key] ? nil : .init(key: key, a: leftValues[key], b: rightValues[key])
        }
        return DiffPayload(a: a.name, b: b.name, changes: changes)
    }

    private func file(_ name: String, in run: RunSummary) -> String {
        (run.path as NSString).appendingPathComponent(name)
    }

    /// A name that can only mean a direct child folder: no separators, no dot-only names, no control characters.
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix(".") && !name.contains("/") && !name.contains("\\")
            && !name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }

    /// `moe3.tokens_per_expert` -> 3.
    static func moeLayerIndex(_ key: String) -> Int? {
        guard key.hasPrefix("moe"), key.hasSuffix(".tokens_per_expert") else { return nil }
        return Int(key.dropFirst("moe".count).dropLast(".tokens_per_expert".count))
    }
}

/// Parsed metrics files and run summaries, reused while the files they came from are unchanged.
private final class RunCache: @unchecked Sendable {
    /// What identifies a file's contents well enough here: modification time and size.
    private struct Stamp: Equatable {
        var modified: Date?
        var size: UInt64?

        init(_ path: String) {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            modified = attributes?[.modificationDate] as? Date
            size = (attributes?[.size] as? NSNumber)?.uint64Value
        }
    }

    private let lock = NSLock()
    private var metricsFiles: [String: (stamp: Stamp, file: MetricsFile)] = [:]
    private var summaries: [String: (stamps: [Stamp], summary: RunSummary)] = [:]

    func metrics(at path: String) throws -> MetricsFile {
        let stamp = Stamp(path)
        if let hit = lock.withLock({ metricsFiles[path] }), hit.stamp == stamp { return hit.file }
        let file = try MetricsFile(path: path)
        lock.withLock { metricsFiles[path] = (stamp, file) }
        return file
    }

    /// `RunIndex.summarize`, redone when metrics.jsonl, config.yaml or the checkpoint state changed,
    /// and always for a running run (whose status depends on the clock).
    func summary(of runDirectory: String, now: Date) -> RunSummary? {
        let stamps = ["metrics.jsonl", "config.yaml", "checkpoint/state.json"]
            .map { Stamp((runDirectory as NSString).appendingPathComponent($0)) }
        if let hit = lock.withLock({ summaries[runDirectory] }), hit.stamps == stamps, hit.summary.status != .running {
            return hit.summary
        }
        guard let summary = RunIndex.summarize(runDirectory: runDirectory, now: now) else {
            lock.withLock { summaries[runDirectory] = nil }
            return nil
        }
        lock.withLock { summaries[runDirectory] = (stamps, summary) }
        return summary
    }
}

/// One row of `GET /api/runs`.
public struct RunRow: Codable, Sendable, Equatable {
    public var name: String
    public var status: String
    public var steps: Int
    public var maxIters: Int?
    public var tokens: Int
    public var bestValLoss: Double?
    /// Seconds since 1970 when metrics.jsonl was last written.
    public var updated: Double
    /// Seconds between that write and the listing.
    public var ageSeconds: Double
    public var warnings: [String]

    init(_ run: RunSummary, now: Date) {
        name = run.name
        status = run.status.rawValue
        steps = run.steps
        maxIters = run.maxIters
        tokens = run.tokens
        bestValLoss = run.bestValLoss.flatMap { $0.isFinite ? $0 : nil }
        updated = run.lastUpdated.timeIntervalSince1970
        ageSeconds = now.timeIntervalSince(run.lastUpdated)
        warnings = run.warnings
    }
}

/// `GET /api/runs/{name}/scalars`: field -> `[[step, value], ...]`, value null where the trainer logged NaN or inf.
public struct ScalarsPayload: Codable, Sendable {
    public var run: String
    public var series: [String: [[Double?]]]
    /// Skipped metrics.jsonl lines (a half-written last line, for example).
    public var warnings: [String]
}

/// Router load of one MoE layer across the logged steps.
public struct MoELayerLoad: Codable, Sendable {
    public var layer: Int
    public var name: String
    public var steps: [Int]
    /// `tokensPerExpert[i][e]`: tokens routed to expert `e` at `steps[i]`.
    public var tokensPerExpert: [[Double]]

    mutating func append(step: Int, counts: [Double]) {
        // A resumed run re-logs steps; keep the later line, as MetricsFile.series does.
        if let last = steps.lastIndex(of: step) {
            tokensPerExpert[last] = counts
        } else {
            steps.append(step)
            tokensPerExpert.append(counts)
        }
    }
}

/// `GET /api/runs/{name}/moe`; `layers` is empty for a dense run.
public struct MoEPayload: Codable, Sendable {
    public var run: String
    public var layers: [MoELayerLoad]
}

/// `GET /api/runs/{name}/config` and `/samples`.
public struct TextPayload: Codable, Sendable {
    public var run: String
    public var text: String
    /// Whether only the end of the file is included.
    public var truncated: Bool
}

/// `GET /api/diff?a=RUN&b=RUN`.
public struct DiffPayload: Codable, Sendable {
    public struct Change: Codable, Sendable, Equatable {
        /// Dotted config key, e.g. `training.max_iters`.
        public var key: String
        /// The value in run `a`, nil when `a` does not set it.
        public var a: String?
        public var b: String?
    }
    public var a: String
    public var b: String
    public var changes: [Change]
}

/// The body of every error the API answers with.
public struct ErrorPayload: Codable, Sendable {
    public var error: String
    public var run: String?
}

/// Why the dashboard could not answer for one run.
public enum DashboardError: Error, Equatable, CustomStringConvertible {
    case missingFile(String, run: String)

    public var description: String {
        switch self {
        case .missingFile(let file, let run): "run \(run) has no readable \(file)"
        }
    }
}

/// Flattens the block-style YAML the trainer writes into `(dotted.key, value)` lines, enough to diff two configs.
enum ConfigLines {
    static func flatten(_ text: String) -> [(key: String, value: String)] {
        var lines: [(key: String, value: String)] = []
        var parents: [(indent: Int, key: String)] = []
        var listCounters: [String: Int] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let indent = raw.prefix { $0 == " " }.count
            let content = raw.trimmingCharacters(in: .whitespaces)
            if content.isEmpty || content.hasPrefix("#") { continue }
            while let last = parents.last, last.indent >= indent, !(content.hasPrefix("- ") && last.indent == indent) {
                parents.removeLast()
            }
            let prefix = parents.map(\.key).joined(separator: ".")
            if content.hasPrefix("- ") || content == "-" {
                let index = listCounters[prefix, default: 0]
                listCounters[prefix] = index + 1
                lines.append(("\(prefix)[\(index)]", String(content.dropFirst()).trimmingCharacters(in: .whitespaces)))
                continue
            }
            guard let colon = content.firstIndex(of: ":") else {
                lines.append((prefix.isEmpty ? content : "\(prefix).\(content)", ""))
                continue
            }
            let key = String(content[..<colon])
            let value = String(content[content.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            let dotted = prefix.isEmpty ? key : "\(prefix).\(key)"
            if value.isEmpty {
                parents.append((indent, key))
            } else {
                lines.append((dotted, value))
            }
        }
        return lines
    }
}
