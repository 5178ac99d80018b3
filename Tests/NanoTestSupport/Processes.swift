import Foundation

/// Runs a program to completion with extra environment variables; returns its exit status, its
/// standard output and error together, and the seconds it took. `onStart` sees the running process.
@discardableResult
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                       onStart: ((Process) -> Void)? = nil) throws -> (status: Int32, output: String, seconds: Double) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    let start = Date()
    try p.run()
    onStart?(p)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self), Date().timeIntervalSince(start))
}
