import Foundation

/// What a chart puts on its horizontal axis: optimizer steps or training tokens seen.
public enum XAxis: String, Sendable, CaseIterable {
    case step
    case tokens

    /// The axis title shown under a chart.
    public var label: String {
        switch self {
        case .step: "step"
        case .tokens: "tokens"
        }
    }
}

/// One line of metrics.jsonl: a training step or an evaluation, keyed by step.
public struct MetricsRecord: Sendable, Equatable {
    /// The optimizer step the line was logged at.
    public var step: Int
    /// Scalar fields, `step` included. A JSON `null` (the trainer's spelling of NaN or inf) reads as NaN.
    public var fields: [String: Double]
    /// Array fields such as `moe0.tokens_per_expert`.
    public var arrays: [String: [Double]]
    /// The 1-based line of the file this record came from.
    public var line: Int

    /// Whether this is an evaluation line rather than a training step.
    public var isEval: Bool { fields["val_loss"] != nil || fields["eval_train_loss"] != nil }

    /// The scalar `name`, or nil when the line does not carry it.
    public subscript(name: String) -> Double? { fields[name] }
}

/// The parsed contents of a run's metrics.jsonl.
///
/// A run killed mid-write leaves a half-written last line; such a line, or any other line that
/// is not a JSON object with a numeric `step`, is skipped and described in `warnings`.
public struct MetricsFile: Sendable {
    /// Where the records were read from (or the name given to in-memory contents).
    public var path: String
    /// Every readable line, in file order.
    public var records: [MetricsRecord]
    /// One message per skipped line, naming the file and line number.
    public var warnings: [String]

    /// Reads and parses the file at `path`.
    /// - Throws: `MetricsFileError.unreadable` when the file cannot be read at all.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MetricsFileError.unreadable(path: path)
        }
        self.init(contents: String(decoding: data, as: UTF8.self), path: path)
    }

    /// Parses metrics.jsonl text; `path` only names the source in warnings.
    public init(contents: String, path: String = "metrics.jsonl") {
        self.path = path
        records = []
        warnings = []
        let decoder = JSONDecoder()
        var lineNumber = 0
        for rawLine in contents.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let text = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { continue }
            guard let object = try? decoder.decode([String: JSONMetric].self, from: Data(text.utf8)) else {
                warnings.append("\(path):\(lineNumber): skipped unreadable line (half-written or not a JSON object): \(Self.preview(text))")
                continue
            }
            guard case .number(let stepValue)? = object["step"], let step = Int(exactly: stepValue.rounded()) else {
                warnings.append("\(path):\(lineNumber): skipped line without a numeric \"step\"")
                continue
            }
            var record = MetricsRecord(step: step, fields: [:], arrays: [:], line: lineNumber)
            for (key, value) in object {
                switch value {
                case .number(let x): record.fields[key] = x
                case .null: record.fields[key] = .nan
                case .numbers(let xs): record.arrays[key] = xs
                case .other: break
                }
            }
            records.append(record)
        }
    }

    /// Every scalar field name that appears on any line.
    public var fieldNames: Set<String> {
        records.reduce(into: Set<String>()) { $0.formUnion($1.fields.keys) }
    }

    /// The highest step logged, or nil for an empty file.
    public var lastStep: Int? { records.map(\.step).max() }

    /// The step of the last evaluation line, or nil when the run never evaluated.
    public var lastEvalStep: Int? { records.last(where: \.isEval)?.step }

    /// The most training tokens any line reports, or nil when no line carries `tokens`.
    public var lastTokens: Int? {
        records.compactMap { $0.fields["tokens"] }.filter(\.isFinite).max().map { Int($0) }
    }

    /// The lowest finite `val_loss`, or nil when there is none.
    public var bestValLoss: Double? {
        records.compactMap { $0.fields["val_loss"] }.filter(\.isFinite).min()
    }

    /// The values of `field` against `x`, ordered by step.
    ///
    /// Lines without the field (or, for `.tokens`, without `tokens`) are left out. A resumed run
    /// re-logs the steps after its checkpoint; for a repeated step the later line wins, so the
    /// series never runs backwards. Non-finite values are kept; charts skip them.
    public func series(_ field: String, against x: XAxis = .step) -> (x: [Double], y: [Double]) {
        var latest: [Int: (x: Double, y: Double)] = [:]
        for record in records {
            guard let y = record.fields[field] else { continue }
            let xValue: Double? = switch x {
            case .step: Double(record.step)
            case .tokens: record.fields["tokens"]
            }
            guard let xValue else { continue }
            latest[record.step] = (xValue, y)
        }
        let ordered = latest.sorted { $0.key < $1.key }.map(\.value)
        return (ordered.map(\.x), ordered.map(\.y))
    }

    private static func preview(_ text: String) -> String {
        text.count <= 60 ? text : String(text.prefix(60)) + "…"
    }
}

/// Why a metrics file could not be read.
public enum MetricsFileError: Error, Equatable, CustomStringConvertible {
    /// The file is missing or unreadable.
    case unreadable(path: String)

    public var description: String {
        switch self {
        case .unreadable(let path): "cannot read metrics file \(path)"
        }
    }
}

/// A value on a metrics line, as far as metrics care: a number, a list of numbers, null or anything else.
private enum JSONMetric: Decodable {
    case number(Double)
    case numbers([Double])
    case null
    case other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if (try? container.decode(Bool.self)) != nil {
            self = .other
        } else if let x = try? container.decode(Double.self) {
            self = .number(x)
        } else if let xs = try? container.decode([Double?].self) {
            self = .numbers(xs.map { $0 ?? .nan })
        } else {
            self = .other
        }
    }
}
