import ArgumentParser
import Foundation
import NanoData

@main
struct Nanodecoder: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nanodecoder",
        abstract: "Build, train, evaluate and sample decoder-only transformers.",
        subcommands: [Prepare.self, TokenizerCommand.self, Train.self, Sample.self, Eval.self, FineTune.self, Classify.self, Chat.self, LoRACommand.self, Runs.self, Plot.self, Dashboard.self, ImportCommand.self, ExportCommand.self, Bench.self, CUDACommand.self])

    /// Errors from the library carry file, key and expectation: print just that (no usage text).
    static func reporting(_ body: () throws -> Void) throws {
        do { try body() } catch let error as ValidationError {
            throw error
        } catch let error as any CustomStringConvertible & Error {
            throw CommandFailure(description: error.description)
        }
    }
}

/// A failure reported as `Error: <description>`, exit code 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
}

/// Writes to stdout immediately (no buffering), so progress and streamed tokens appear as they happen.
func emit(_ text: String, terminator: String = "\n") {
    FileHandle.standardOutput.write(Data((text + terminator).utf8))
}

/// A UTF-8 text file's contents, or an error naming the file.
/// A text file's characters prepared as a dataset (train.bin, val.bin, meta.json) in a temporary
/// folder, for commands that train on a file directly (`bench train`, `cuda train-check`).
struct TemporaryCharDataset {
    let folder: String

    init(text path: String, tag: String) throws {
        folder = NSTemporaryDirectory() + "nanodecoder-\(tag)-\(getpid())"
        _ = try NanoData.Prepare.run(text: try readText(path, what: "training text"), source: path, folder: folder, tokenizer: .char, log: { _ in })
    }

    func remove() { try? FileManager.default.removeItem(atPath: folder) }
}

func readText(_ path: String, what: String = "text") throws -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw CommandFailure(description: "\(path): cannot read it as UTF-8 \(what)")
    }
    return text
}
