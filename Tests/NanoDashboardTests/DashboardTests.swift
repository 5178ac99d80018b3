import Foundation
import Hummingbird
import Testing
@testable import NanoDashboard

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The server runs for real on an ephemeral loopback port; requests go out as raw bytes so that
// traversal paths such as `/api/runs/../config` reach the router exactly as written.

@Suite struct DashboardTests {
    @Test func runsListsEveryRunFolderAndNothingElse() async throws {
        let logs = try SyntheticLogs()
        try await withDashboard(logs.path) { port in
            let (status, body) = try await httpGet(port: port, path: "/api/runs")
            #expect(status == 200)
            let runs = try JSONDecoder().decode([RunRow].self, from: Data(body.utf8))
            #expect(Set(runs.map(\.name)) == ["dense", "moe", "broken"])
            let dense = try #require(runs.first { $0.name == "dense" })
            #expect(dense.steps == 2)
            #expect(dense.tokens == 1536)
            #expect(dense.bestValLoss == 2.3)
            #expect(dense.maxIters == 2)
            #expect(dense.status == "finished")
            #expect(dense.warnings.count == 1)  // the half-written last line
        }
    }

    @Test func scalarsEqualTheMetricsFileValues() async throws {
        let logs = try SyntheticLogs()
        try await withDashboard(logs.path) { port in
            let (status, body) = try await httpGet(port: port, path: "/api/runs/dense/scalars")
            #expect(status == 200)
            let scalars = try JSONDecoder().decode(ScalarsPayload.self, from: Data(body.utf8))
            #expect(scalars.series["train_loss"] == [[1, 2.5], [2, 2.25]])
            #expect(scalars.series["val_loss"] == [[0, 2.6], [2, 2.3]])
            #expect(scalars.series["lr"] == [[1, 0.001], [2, 0.002]])
            #expect(scalars.series["tokens_per_s"] == [[1, 1000], [2, nil]])  // the trainer's null (NaN)
            #expect(scalars.series["tokens"] == [[0, 0], [1, 768], [2, 1536]])
            #expect(scalars.series["step"] == nil)
            #expect(scalars.warnings.count == 1)
        }
    }

    @Test func moeLoadIsGroupedByLayerAndStep() async throws {
        let logs = try SyntheticLogs()
        try await withDashboard(logs.path) { port in
            let (status, body) = try await httpGet(port: port, path: "/api/runs/moe/moe")
            #expect(status == 200)
            let moe = try JSONDecoder().decode(MoEPayload.self, from: Data(body.utf8))
            #expect(moe.layers.map(\.name) == ["moe0", "moe1"])
            #expect(moe.layers[0].steps == [1, 2])
            #expect(moe.layers[0].tokensPerExpert == [[10, 20, 30, 4], [16, 16, 16, 16]])
            #expect(moe.layers[1].tokensPerExpert == [[64, 0, 0, 0], [1, 2, 3, 58]])

            let dense = try JSONDecoder().decode(MoEPayload.self, from: Data(try await httpGet(port: port, path: "/api/runs/dense/moe").body.utf8))
            #expect(dense.layers.isEmpty)
        }
    }

    @Test func configSamplesAndDiffAreServed() async throws {
        let logs = try SyntheticLogs()
        try await withDashboard(logs.path) { port in
            let config = try JSONDecoder().decode(TextPayload.self, from: Data(try await httpGet(port: port, path: "/api/runs/dense/config").body.utf8))
            #expect(config.text == SyntheticLogs.denseConfig)

            let samples = try JSONDecoder().decode(TextPayload.self, from: Data(try await httpGet(port: port, path: "/api/runs/dense/samples").body.utf8))
            #expect(samples.text.contains("=== step 2 ==="))
            #expect(!samples.truncated)

            let (status, body) = try await httpGet(port: port, path: "/api/diff?a=dense&b=moe")
            #expect(status == 200)
            let diff = try JSONDecoder().decode(DiffPayload.self, from: Data(body.utf8))
            #expect(diff.changes == [
                .init(key: "training.max_iters", a: "2", b: "300"),
                .init(key: "output.name", a: "\"dense\"", b: "\"moe\""),
                .init(key: "moe.n_exp", a: nil, b: "4"),
            ])
            #expect(try await httpGet(port: port, path: "/api/diff?a=dense&b=..").status == 404)
        }
    }

    @Test func samplesAreCutToTheirLastBytes() throws {
        let logs = try SyntheticLogs()
        let store = RunStore(logDirectory: logs.path, samplesTailBytes: 10)
        let samples = try store.samples(of: try #require(store.run(named: "dense")))
        #expect(samples.truncated)
        #expect(samples.text == String(SyntheticLogs.samples.suffix(10)))
    }

    @Test(arguments: [
        "/api/runs/..%2F..%2Fetc/scalars", "/api/runs/../config", "/etc/passwd", "/api/runs/%2e%2e/config",
        "/api/runs/..%2Fdense/config", "/api/runs/%2Fetc%2Fpasswd/config", "/api/runs/./config", "/api/runs/.hidden/config",
        "/../../etc/passwd", "/api/runs/notarun/samples", "/api/runs/dense/../../secret.txt", "/secret.txt",
        "/api/diff?a=../dense&b=moe",
    ])
    func pathTraversalIsRefused(path: String) async throws {
        let logs = try SyntheticLogs()
        try await withDashboard(logs.path) { port in
            let (status, body) = try await httpGet(port: port, path: path)
            #expect(status == 404 || status == 403, "\(path) answered \(status)")
            #expect(!body.contains("root:") && !body.contains("do not serve"))
        }
    }

    @Test func brokenRunAnswersWithAJSONErrorWhileOthersKeepServing() async throws {
        let logs = try SyntheticLogs()
        try await withDashboard(logs.path) { port in
            let (status, body) = try await httpGet(port: port, path: "/api/runs/broken/config")
            #expect(status == 404)
            let error = try JSONDecoder().decode(ErrorPayload.self, from: Data(body.utf8))
            #expect(error.run == "broken")
            #expect(error.error.contains("config.yaml"))

            let scalars = try JSONDecoder().decode(ScalarsPayload.self, from: Data(try await httpGet(port: port, path: "/api/runs/broken/scalars").body.utf8))
            #expect(scalars.series.isEmpty)
            #expect(scalars.warnings.count == 2)
            #expect(try await httpGet(port: port, path: "/api/runs/dense/scalars").status == 200)
        }
    }

    @Test func pageCarriesChartMarkupAndNoExternalAssets() async throws {
        let logs = try SyntheticLogs()
        try await withDashboard(logs.path) { port in
            let (status, body) = try await httpGet(port: port, path: "/")
            #expect(status == 200)
            #expect(body.contains("<!doctype html>"))
            #expect(body.contains(#"div.className = "chart""#))
            #expect(body.contains("div.dataset.field = field"))
            #expect(body.contains(#"document.body.dataset.ready = "1""#))
            #expect(!body.contains("http://") && !body.contains("https://"))
        }
    }

    @Test func configFlattensToDottedKeys() {
        let lines = ConfigLines.flatten("""
            model:
              n_layer: 4   
              # a comment
            training:
              max_iters: 300
              schedule:
                warmup: 10
              betas:
                - 0.9
                - 0.95
            top: "x"
            """)
        #expect(lines.map { "\($0.key)=\($0.value)" } == [
            "model.n_layer=4", "training.max_iters=300", "training.schedule.warmup=10",
            "training.betas[0]=0.9", "training.betas[1]=0.95", "top=\"x\"",
        ])
    }

    @Test func moeLayerIndexReadsOnlyTokensPerExpertKeys() {
        #expect(RunStore.moeLayerIndex("moe0.tokens_per_expert") == 0)
        #expect(RunStore.moeLayerIndex("moe12.tokens_per_expert") == 12)
        #expect(RunStore.moeLayerIndex("moe0.router_entropy") == nil)
        #expect(RunStore.moeLayerIndex("moex.tokens_per_expert") == nil)
    }
}

// MARK: - Fixtures

/// A temporary log directory with a dense run (half-written last line), a MoE run and a broken run.
final class SyntheticLogs {
    let path: String

    static let denseConfig = """
        training:
          batch_size: 12
          max_iters: 2
        output:
          name: "dense"

        """
    static let samples = "=== step 0 ===\nabc\n\n=== step 2 ===\nhello there\n"

    init() throws {
        path = NSTemporaryDirectory() + "nanodashboard-" + UUID().uuidString
        let dense = """
            {"step": 0, "val_loss": 2.6, "eval_train_loss": 2.6, "tokens": 0}
            {"step": 1, "train_loss": 2.5, "lr": 0.001, "tokens_per_s": 1000, "tokens": 768}
            {"step": 2, "train_loss": 2.25, "lr": 0.002, "tokens_per_s": null, "tokens": 1536}
            {"step": 2, "val_loss": 2.3, "eval_train_loss": 2.2, "tokens": 1536}
            {"step": 3, "train_lo
            """
        let moe = """
            {"step": 0, "val_loss": 3.0, "eval_train_loss": 3.0, "tokens": 0}
            {"step": 1, "train_loss": 2.9, "moe0.tokens_per_expert": [10, 20, 30, 4], "moe1.tokens_per_expert": [64, 0, 0, 0], "tokens": 64}
            {"step": 2, "train_loss": 2.8, "moe0.tokens_per_expert": [16, 16, 16, 16], "moe1.tokens_per_expert": [1, 2, 3, 58], "tokens": 128}

            """
        try write(dense, "dense/metrics.jsonl")
        try write(Self.denseConfig, "dense/config.yaml")
        try write(Self.samples, "dense/samples.txt")
        try write(moe, "moe/metrics.jsonl")
        try write("training:\n  batch_size: 12\n  max_iters: 300\noutput:\n  name: \"moe\"\nmoe:\n  n_exp: 4\n", "moe/config.yaml")
        try write("not json\n{\"no_step\": 1}\n", "broken/metrics.jsonl")
        try write("do not serve\n", "secret.txt")
        try write("do not serve\n", ".hidden/metrics.jsonl")
        try write("do not serve\n", "notarun/samples.txt")
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    private func write(_ text: String, _ relative: String) throws {
        let file = (path as NSString).appendingPathComponent(relative)
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
    }
}

/// Runs the dashboard on a free loopback port for the duration of `body`.
func withDashboard(_ logDirectory: String, _ body: (Int) async throws -> Void) async throws {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = makeDashboardApplication(DashboardOptions(logDirectory: logDirectory, port: 0)) { port in
        continuation.yield(port)
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestHTTPError.noPort }
        defer { group.cancelAll() }
        try await body(port)
    }
}

enum TestHTTPError: Error { case noPort, socket(String), malformedResponse }

/// An HTTP/1.1 GET that sends `path` byte for byte, with no client-side normalisation.
///
/// The blocking socket work runs on its own thread: blocking a concurrency-pool thread could starve the
/// server's handlers, which run on that pool too.
func httpGet(port: Int, path: String) async throws -> (status: Int, body: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try blockingGet(port: port, path: path) }) }.start()
    }
}

private func blockingGet(port: Int, path: String) throws -> (status: Int, body: String) {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw TestHTTPError.socket("socket") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)  // a hung server fails the test instead of hanging it
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestHTTPError.socket("connect") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { throw TestHTTPError.socket("send") }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        response.append(contentsOf: buffer[0..<count])
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let headerEnd = text.range(of: "\r\n\r\n"),
          let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap({ Int($0) }) else {
        throw TestHTTPError.malformedResponse
    }
    return (status, String(text[headerEnd.upperBound...]))
}
