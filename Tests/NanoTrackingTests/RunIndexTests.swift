import Foundation
import Testing
@testable import NanoTracking

/// A scratch runs/ folder, removed when the value goes away.
private final class RunsFolder {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("runs-\(UUID())").path

    init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `files` (relative path -> contents) into run `name`, optionally back-dating metrics.jsonl.
    func addRun(_ name: String, files: [String: String], metricsModified: Date? = nil) throws {
        for (relative, contents) in files {
            let file = "\(path)/\(name)/\(relative)"
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try Data(contents.utf8).write(to: URL(fileURLWithPath: file))
        }
        if let metricsModified {
            try FileManager.default.setAttributes([.modificationDate: metricsModified],
                                                  ofItemAtPath: "\(path)/\(name)/metrics.jsonl")
        }
    }
}

private func config(maxIters: Int) -> String {
    "model:\n  n_layer: 4\ntraining:\n  batch_size: 12\n  max_iters: \(maxIters)  # total steps\n  eval_interval: 250\n"
}

private func metrics(steps: ClosedRange<Int>, evalEvery: Int, valLoss: (Int) -> Double) -> String {
    var lines: [String] = []
    for step in steps {
        if step > 0 { lines.append("{\"step\":\(step),\"tokens\":\(step * 768),\"train_loss\":2.0,\"lr\":0.001}") }
        if step % evalEvery == 0 || step == steps.upperBound {
            lines.append("{\"step\":\(step),\"tokens\":\(step * 768),\"val_loss\":\(valLoss(step)),\"eval_train_loss\":2.0}")
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

@Test func readsMaxItersWithATinyLineParser() {
    #expect(RunIndex.maxIters(fromConfig: config(maxIters: 2000)) == 2000)
    #expect(RunIndex.maxIters(fromConfig: "training:\n  max_iters: \"400\"\n") == 400)
    #expect(RunIndex.maxIters(fromConfig: "# max_iters: 5\ntraining:\n  batch_size: 1\n") == nil)
    #expect(RunIndex.maxIters(fromConfig: "training:\n  max_iters_extra: 9\n") == nil)
}

@Test func listsRunsWithStatusBestLossStepsAndTokens() throws {
    let runs = try RunsFolder()
    let now = Date()
    let old = now.addingTimeInterval(-3600)
    try runs.addRun("finished", files: [
        "config.yaml": config(maxIters: 20),
        "metrics.jsonl": metrics(steps: 0...20, evalEvery: 10) { 3.0 - Double($0) / 20 },
        "checkpoint/state.json": #"{"step": 20, "bestValLoss": 2.0, "tokensSeen": 15360}"#,
    ], metricsModified: old.addingTimeInterval(-10))
    try runs.addRun("stopped", files: [
        "config.yaml": config(maxIters: 100),
        "metrics.jsonl": metrics(steps: 0...30, evalEvery: 10) { $0 == 20 ? 1.5 : 2.5 },
        "checkpoint/state.json": #"{"step": 30, "bestValLoss": 1.5, "tokensSeen": 23040}"#,
    ], metricsModified: old)
    // Live: written seconds ago, checkpoint already saved below max_iters, last line half-written.
    try runs.addRun("running", files: [
        "config.yaml": config(maxIters: 100),
        "metrics.jsonl": metrics(steps: 0...12, evalEvery: 10) { _ in 2.2 } + "{\"step\":13,\"tra",
        "checkpoint/state.json": #"{"step": 10, "bestValLoss": 2.2, "tokensSeen": 7680}"#,
    ], metricsModified: now.addingTimeInterval(-5))
    try runs.addRun("empty", files: ["config.yaml": config(maxIters: 100), "metrics.jsonl": ""],
                    metricsModified: old.addingTimeInterval(-20))
    try runs.addRun("not-a-run", files: ["notes.txt": "hello"])

    let list = try RunIndex.list(logDirectory: runs.path, now: now)
    #expect(list.map(\.name) == ["running", "stopped", "finished", "empty"])
    let byName = Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })

    let finished = try #require(byName["finished"])
    #expect(finished.status == .finished)
    #expect(finished.steps == 20 && finished.tokens == 15360 && finished.maxIters == 20)
    #expect(finished.bestValLoss == 2.0)

    let stopped = try #require(byName["stopped"])
    #expect(stopped.status == .stopped && stopped.bestValLoss == 1.5 && stopped.steps == 30)

    let running = try #require(byName["running"])
    #expect(running.status == .running && running.steps == 12)
    #expect(running.warnings.count == 1)

    let empty = try #require(byName["empty"])
    #expect(empty.status == .empty && empty.steps == 0 && empty.bestValLoss == nil)
}

@Test func staleRunWithoutConfigIsStoppedAndUsesTheCheckpointForMissingValues() throws {
    let runs = try RunsFolder()
    try runs.addRun("bare", files: [
        "metrics.jsonl": "{\"step\":5,\"train_loss\":2.0}\n",
        "checkpoint/state.json": #"{"step": 5, "bestValLoss": 2.75, "tokensSeen": 3840, "seed": 1}"#,
    ], metricsModified: Date().addingTimeInterval(-600))
    let run = try #require(try RunIndex.list(logDirectory: runs.path).first)
    #expect(run.status == .stopped && run.maxIters == nil)
    #expect(run.bestValLoss == 2.75 && run.tokens == 3840 && run.steps == 5)
}

@Test func listingAMissingFolderThrows() {
    #expect(throws: RunIndexError.notADirectory(path: "/nonexistent/runs")) {
        try RunIndex.list(logDirectory: "/nonexistent/runs")
    }
}

@Test func tableAlignsColumns() {
    let now = Date()
    let runs = [
        RunSummary(name: "shakespeare-char", path: "runs/shakespeare-char", bestValLoss: 1.8936, steps: 2000,
                   tokens: 1_536_000, maxIters: 2000, status: .finished, lastUpdated: now.addingTimeInterval(-7200)),
        RunSummary(name: "smoke", path: "runs/smoke", bestValLoss: nil, steps: 7, tokens: 900, maxIters: nil,
                   status: .running, lastUpdated: now.addingTimeInterval(-3)),
    ]
    let lines = RunIndex.table(runs, now: now).split(separator: "\n").map(String.init)
    #expect(lines.count == 3)
    #expect(lines[0].hasPrefix("NAME") && lines[0].contains("BEST VAL"))
    #expect(lines[1].contains("shakespeare-char  finished") && lines[1].contains("2000/2000")
            && lines[1].contains("1.54M") && lines[1].contains("1.8936") && lines[1].hasSuffix("2h ago"))
    #expect(lines[2].contains("smoke") && lines[2].contains(" - ") && lines[2].hasSuffix("3s ago"))
    // Right-aligned columns end at the same offset in every row.
    let tokenEnds = lines.map { line in line.range(of: line == lines[0] ? "TOKENS" : (line == lines[1] ? "1.54M" : "900"))!.upperBound.utf16Offset(in: line) }
    #expect(Set(tokenEnds).count == 1)
    #expect(RunIndex.table([]).contains("(no runs)"))
}
