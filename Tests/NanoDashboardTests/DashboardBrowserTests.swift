import Foundation
import NanoTracking
import Testing

/// The repository root, from this file's path.
private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
private let binary = repoRoot + "/.build/debug/nanodecoder"
private let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

@discardableResult
private func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// End to end: a real short training run, the dashboard over it, headless Chromium rendering the page.
@Suite(.serialized) struct DashboardBrowserTests {
    @Test(.enabled(if: chromium != nil && FileManager.default.isExecutableFile(atPath: binary),
                   "needs chromium (apt-get install -y chromium) and the built nanodecoder binary"))
    func chromiumRendersTheDashboardOfARealRun() async throws {
        let tmp = NSTemporaryDirectory() + "dash-e2e-\(UUID().uuidString)"
        let text = tmp + "/input.txt"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        try String(repeating: "First Citizen:\nBefore we proceed any further, hear me speak.\n", count: 200)
            .write(toFile: text, atomically: true, encoding: .utf8)
        var (status, output) = try run(binary, ["prepare", "--input", text, "--out", tmp + "/data"])
        #expect(status == 0, "prepare: \(output)")
        (status, output) = try run(binary, ["train", "--set", "data.dataset=\(tmp)/data", "--set", "training.max_iters=20",
                                            "--set", "training.eval_interval=10", "--set", "training.eval_iters=2",
                                            "--set", "output.out_dir=\(tmp)/runs", "--set", "output.name=e2e", "--set", "tracking.sample_tokens=40",
                                            "--set", "model.n_layer=1", "--set", "model.n_embd=32", "--set", "model.block_size=32",
                                            "--set", "training.batch_size=4"])
        #expect(status == 0, "train: \(output)")

        // The API serves exactly what the metrics file holds.
        let metrics = try MetricsFile(path: tmp + "/runs/e2e/metrics.jsonl")
        try await withDashboard(tmp + "/runs") { port in
            let (code, body) = try await httpGet(port: port, path: "/api/runs/e2e/scalars")
            #expect(code == 200)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let series = try #require(json["series"] as? [String: [[Double?]]])
            let served = (series["val_loss"] ?? []).map { [$0[0]!, $0[1]!] }
            let expected = zip(metrics.series("val_loss").x, metrics.series("val_loss").y).map { [$0, $1] }
            #expect(served == expected && served.count == 3)
            #expect(try await httpGet(port: port, path: "/api/runs/..%2F..%2Fetc%2Fpasswd/config").status == 404)
        }

        // Headless Chromium loads the page, the script checks the rendered DOM, and keeps a screenshot.
        let screenshot = tmp + "/dashboard.png"
        (status, output) = try run("/bin/bash", [repoRoot + "/scripts/dashboard_screenshot.sh", tmp + "/runs", screenshot],
                                   environment: ["NANODECODER_BIN": binary])
        #expect(status == 0, "screenshot script: \(output)")
        let dom = try String(contentsOfFile: tmp + "/dashboard.dom.html", encoding: .utf8)
        #expect(dom.contains("data-ready=\"1\"") && dom.contains("class=\"chart\"") && dom.contains("e2e"))
        let size = (try FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
        #expect(size > 10_000, "screenshot is \(size) bytes")
    }
}
