import Foundation

/// The repository root (three levels above this file).
public let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// A Python that can import `module`: $NANODECODER_PYTHON, or one of the repo's venvs
/// (`.venv-test` made by scripts/test.sh, `.venv` made by the fixture scripts). nil when none can,
/// so tests that need it are skipped with a reason.
public func python(importing module: String) -> String? {
    let candidates = [ProcessInfo.processInfo.environment["NANODECODER_PYTHON"],
                      repositoryRoot + "/.venv-test/bin/python", repositoryRoot + "/.venv/bin/python"]
    return candidates.compactMap { $0 }.first { python in
        guard FileManager.default.isExecutableFile(atPath: python) else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import \(module)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}
