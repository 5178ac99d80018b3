import Foundation
import NanoEngine

/// A fine-tuning data problem, naming the file and line.
public struct FineTuneDataError: Error, CustomStringConvertible {
    public var file: String, line: Int?, message: String
    public init(file: String, line: Int? = nil, message: String) { self.file = file; self.line = line; self.message = message }
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// One labelled text for classification, with the line it came from.
public struct LabeledText: Equatable, Sendable {
    public var text: String, label: String, line: Int
    public init(text: String, label: String, line: Int) { self.text = text; self.label = label; self.line = line }
}

/// One Alpaca-style example: instruction, optional input, reference output.
public struct InstructionExample: Codable, Equatable, Sendable {
    public var instruction: String, input: String, output: String
    public init(instruction: String, input: String = "", output: String) {
        self.instruction = instruction; self.input = input; self.output = output
    }

    /// The Alpaca prompt up to and including "### Response:\n"; the response follows it.
    public var prompt: String {
        var p = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            + "\n\n### Instruction:\n" + instruction
        if !input.isEmpty { p += "\n\n### Input:\n" + input }
        return p + "\n\n### Response:\n"
    }
}

public enum FineTuneData {
    /// Labelled texts from a .csv (quoted fields allowed), .tsv or .jsonl file with a header
    /// (or keys) naming the text and label columns. Rows with an empty text are skipped and
    /// counted; a malformed row is an error naming its line.
    public static func labeledTexts(_ path: String, textColumn: String, labelColumn: String) throws -> (rows: [LabeledText], skippedEmpty: Int) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw FineTuneDataError(file: path, message: "cannot read the file as UTF-8 text")
        }
        let ext = (path as NSString).pathExtension.lowercased()
        var rows: [LabeledText] = [], skipped = 0
        func add(_ text: String?, _ label: String?, line: Int) throws {
            guard let label, !label.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw FineTuneDataError(file: path, line: line, message: "missing label in column '\(labelColumn)'")
            }
            guard let text, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { skipped += 1; return }
            rows.append(LabeledText(text: text, label: label.trimmingCharacters(in: .whitespaces), line: line))
        }
        switch ext {
        case "jsonl", "json":
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty { continue }
                guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                    throw FineTuneDataError(file: path, line: i + 1, message: "not a JSON object")
                }
                guard object[textColumn] != nil || object[labelColumn] != nil else {
                    throw FineTuneDataError(file: path, line: i + 1, message: "no '\(textColumn)' or '\(labelColumn)' key (keys: \(object.keys.sorted().joined(separator: ", ")))")
                }
                try add(object[textColumn] as? String, (object[labelColumn] as? String) ?? (object[labelColumn]).map { "\($0)" }, line: i + 1)
            }
        case "csv", "tsv":
            let records = try delimitedRecords(text, separator: ext == "tsv" ? "\t" : ",", quoted: ext == "csv", path: path)
            guard let header = records.first else { throw FineTuneDataError(file: path, message: "the file is empty") }
            guard let ti = header.fields.firstIndex(of: textColumn), let li = header.fields.firstIndex(of: labelColumn) else {
                throw FineTuneDataError(file: path, line: header.line, message: "the header \(header.fields) lacks column '\(textColumn)' or '\(labelColumn)' (choose them with --text-column / --label-column)")
            }
            for record in records.dropFirst() {
                if record.fields == [""] { continue }
                guard record.fields.count == header.fields.count else {
                    throw FineTuneDataError(file: path, line: record.line, message: "expected \(header.fields.count) fields, got \(record.fields.count)")
                }
                try add(record.fields[ti], record.fields[li], line: record.line)
            }
        default:
            throw FineTuneDataError(file: path, message: "unknown extension '.\(ext)': expected .csv, .tsv or .jsonl")
        }
        guard !rows.isEmpty else { throw FineTuneDataError(file: path, message: "no rows with text") }
        return (rows, skipped)
    }

    /// Rows of a delimited file with their starting line numbers; CSV fields may be quoted ("" escapes a quote).
    static func delimitedRecords(_ text: String, separator: Character, quoted: Bool, path: String) throws -> [(fields: [String], line: Int)] {
        var records: [(fields: [String], line: Int)] = []
        var fields: [String] = [], field = "", inQuotes = false, line = 1, recordLine = 1, quoteLine = 1
        var chars = text.makeIterator()
        var pending: Character? = nil
        while let c = pending ?? chars.next() {
            pending = nil
            if inQuotes {
                if c == "\"" {
                    let next = chars.next()
                    if next == "\"" { field.append("\"") } else { inQuotes = false; pending = next }
                } else {
                    if c == "\n" || c == "\r\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"" where quoted && field.isEmpty:
                inQuotes = true; quoteLine = line
            case separator:
                fields.append(field); field = ""
            case "\n", "\r\n":
                fields.append(field); field = ""
                records.append((fields, recordLine))
                fields = []; line += 1; recordLine = line
            default:
                field.append(c)
            }
        }
        if inQuotes { throw FineTuneDataError(file: path, line: quoteLine, message: "unterminated quoted field") }
        if !field.isEmpty || !fields.isEmpty { fields.append(field); records.append((fields, recordLine)) }
        return records
    }

    /// Alpaca-format examples from a JSON array of objects with "instruction", "input" (optional)
    /// and "output", or from JSONL. A bad entry is an error naming its line.
    public static func instructionExamples(_ path: String) throws -> [InstructionExample] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw FineTuneDataError(file: path, message: "cannot read the file as UTF-8 text")
        }
        let objects: [(Any, Int)]
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("[") {
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
                let detail = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)"
                throw FineTuneDataError(file: path, message: "not valid JSON: \(detail)")
            }
            guard let array = parsed as? [Any] else { throw FineTuneDataError(file: path, message: "expected a JSON array of examples") }
            let lines = elementLines(text)
            objects = array.enumerated().map { ($0.element, $0.offset < lines.count ? lines[$0.offset] : 0) }
        } else {
            objects = try text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { i, line in
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty { return nil }
                guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) else {
                    throw FineTuneDataError(file: path, line: i + 1, message: "not valid JSON")
                }
                return (object, i + 1)
            }
        }
        let examples = try objects.map { object, line -> InstructionExample in
            guard let o = object as? [String: Any] else { throw FineTuneDataError(file: path, line: line, message: "expected a JSON object") }
            guard let instruction = o["instruction"] as? String, let output = o["output"] as? String else {
                throw FineTuneDataError(file: path, line: line, message: "an example needs string fields 'instruction' and 'output' (has: \(o.keys.sorted().joined(separator: ", ")))")
            }
            if let input = o["input"], !(input is String) {
                throw FineTuneDataError(file: path, line: line, message: "'input' must be a string")
            }
            return InstructionExample(instruction: instruction, input: o["input"] as? String ?? "", output: output)
        }
        guard !examples.isEmpty else { throw FineTuneDataError(file: path, message: "no examples") }
        return examples
    }

    /// Line number where each top-level element of a JSON array starts.
    static func elementLines(_ text: String) -> [Int] {
        var lines: [Int] = [], line = 1, depth = 0, inString = false, escaped = false
        for c in text.utf8 {
            if c == UInt8(ascii: "\n") { line += 1 }
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch c {
            case UInt8(ascii: "\""): if depth == 1 { lines.append(line) }; inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth == 1 { lines.append(line) }
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            default:
                if depth == 1 && c > 32 && c != UInt8(ascii: ",") && (lines.last != line) { lines.append(line) }
            }
        }
        return lines
    }

    /// Splits indices 0..<count into train/val/test by `fractions`, shuffled with `seed`. With
    /// `strata` (one key per row) each stratum is split separately, so class proportions match.
    public static func split(count: Int, fractions: [Double], seed: UInt64, strata: [String]? = nil) -> [[Int]] {
        let groups: [[Int]]
        if let strata {
            var byKey: [String: [Int]] = [:]
            for (i, k) in strata.enumerated() { byKey[k, default: []].append(i) }
            groups = byKey.keys.sorted().map { byKey[$0]! }
        } else {
            groups = [Array(0..<count)]
        }
        var parts: [[Int]] = Array(repeating: [], count: fractions.count)
        let total = fractions.reduce(0, +)
        for (g, group) in groups.enumerated() {
            let shuffled = shuffle(group, seed: seed &+ UInt64(g))
            var start = 0
            for (p, f) in fractions.enumerated() {
                let end = p == fractions.count - 1 ? shuffled.count : min(shuffled.count, start + Int((Double(shuffled.count) * f / total).rounded()))
                parts[p] += shuffled[start..<end]
                start = end
            }
        }
        return parts.enumerated().map { shuffle($0.element, seed: seed &+ 1000 &+ UInt64($0.offset)) }
    }

    /// A deterministic Fisher–Yates shuffle driven by Philox.
    public static func shuffle<T>(_ items: [T], seed: UInt64) -> [T] {
        var items = items
        guard items.count > 1 else { return items }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            let r = Philox.block(counter: UInt64(i), seed: seed)
            let j = Int((UInt64(r[0]) << 32 | UInt64(r[1])) % UInt64(i + 1))
            items.swapAt(i, j)
        }
        return items
    }

    /// Parses "0.7,0.1,0.2" into three non-negative fractions with a positive train part.
    public static func parseSplit(_ text: String) throws -> [Double] {
        let parts = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ $0 != nil && $0! >= 0 }), parts[0]! > 0 else {
            throw FineTuneDataError(file: "--split", message: "expected three fractions train,val,test like 0.7,0.1,0.2, got '\(text)'")
        }
        return parts.map { $0! }
    }
}
