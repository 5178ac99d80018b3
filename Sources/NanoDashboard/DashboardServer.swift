import Foundation
import Hummingbird
import NanoTracking

/// Where the dashboard reads runs from and where it listens.
public struct DashboardOptions: Sendable {
    /// The folder whose direct subfolders are run folders (`runs/` by default in the CLI).
    public var logDirectory: String
    /// The address to bind; loopback unless told otherwise, since the API shows configs and samples.
    public var host: String
    public var port: Int

    public init(logDirectory: String, host: String = "127.0.0.1", port: Int = 6006) {
        self.logDirectory = logDirectory
        self.host = host
        self.port = port
    }
}

/// Serves the dashboard until the process is interrupted (SIGINT/SIGTERM end it gracefully).
/// - Throws: `RunIndexError.notADirectory` when the log directory is missing, or the server's bind error.
public func runDashboard(_ options: DashboardOptions) async throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: options.logDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw RunIndexError.notADirectory(path: options.logDirectory)
    }
    let app = makeDashboardApplication(options) { port in
        print("dashboard: serving \(options.logDirectory) at http://\(options.host):\(port)/ (Ctrl-C to stop)")
    }
    try await app.runService()
}

/// The dashboard as a Hummingbird application, not yet running.
///
/// `onServerRunning` receives the bound port (useful with `port: 0`, which picks a free one, as the tests do);
/// `runDashboard` uses it to print the address.
public func makeDashboardApplication(
    _ options: DashboardOptions,
    onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    Application(
        router: makeDashboardRouter(logDirectory: options.logDirectory),
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "nanodecoder-dashboard"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? options.port) })
}

/// Routes of the dashboard: `/` (the page) and the read-only JSON API under `/api/`. Nothing else touches the disk.
public func makeDashboardRouter(logDirectory: String) -> Router<BasicRequestContext> {
    let store = RunStore(logDirectory: logDirectory)
    let router = Router(context: BasicRequestContext.self)

    router.get("/") { _, _ in
        htmlResponse(DashboardPage.html)
    }
    router.get("/api/runs") { _, _ in
        do {
            return jsonResponse(try store.runs())
        } catch {
            return jsonResponse(ErrorPayload(error: "\(error)"), status: .internalServerError)
        }
    }
    router.get("/api/runs/{name}/scalars") { _, context in
        withRun(context, store) { try store.scalars(of: $0) }
    }
    router.get("/api/runs/{name}/moe") { _, context in
        withRun(context, store) { try store.moe(of: $0) }
    }
    router.get("/api/runs/{name}/config") { _, context in
        withRun(context, store) { try store.config(of: $0) }
    }
    router.get("/api/runs/{name}/samples") { _, context in
        withRun(context, store) { try store.samples(of: $0) }
    }
    router.get("/api/diff") { request, _ in
        let names = (request.uri.queryParameters.get("a"), request.uri.queryParameters.get("b"))
        guard let a = names.0.flatMap({ store.run(named: $0) }), let b = names.1.flatMap({ store.run(named: $0) }) else {
            return jsonResponse(ErrorPayload(error: "both a and b must name runs"), status: .notFound)
        }
        do {
            return jsonResponse(try store.configDiff(a, b))
        } catch {
            return jsonResponse(ErrorPayload(error: "\(error)"), status: .notFound)
        }
    }
    return router
}

/// Looks up the `{name}` run and answers with `body(run)`; an unknown name is a 404 and a failure
/// a JSON error for this run alone.
private func withRun(_ context: BasicRequestContext, _ store: RunStore,
                     _ body: (RunSummary) throws -> some Encodable) -> Response {
    let raw = context.parameters.get("name") ?? ""
    let name = raw.removingPercentEncoding ?? raw
    guard let run = store.run(named: name) else {
        return jsonResponse(ErrorPayload(error: "no run named \(name)", run: nil), status: .notFound)
    }
    do {
        return jsonResponse(try body(run))
    } catch let error as DashboardError {
        return jsonResponse(ErrorPayload(error: error.description, run: run.name), status: .notFound)
    } catch {
        return jsonResponse(ErrorPayload(error: "\(error)", run: run.name), status: .internalServerError)
    }
}

private func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = (try? encoder.encode(value)) ?? Data(#"{"error":"encoding failed"}"#.utf8)
    return Response(status: status,
                    headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                    body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

private func htmlResponse(_ html: String) -> Response {
    Response(status: .ok,
             headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
             body: .init(byteBuffer: ByteBuffer(string: html)))
}
