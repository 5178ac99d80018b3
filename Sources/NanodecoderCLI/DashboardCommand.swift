import ArgumentParser
import NanoDashboard

struct Dashboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a live dashboard of the runs in a folder (web page + JSON API under /api/, works offline).")
    @Option(help: "Folder holding run folders.") var logdir: String = "runs"
    @Option(help: "Port.") var port: Int = 6006
    @Option(help: "Address to bind (127.0.0.1 keeps it local; 0.0.0.0 exposes it).") var host: String = "127.0.0.1"

    func run() async throws {
        var options = DashboardOptions(logDirectory: logdir)
        options.host = host
        options.port = port
        try await runDashboard(options)
    }
}
