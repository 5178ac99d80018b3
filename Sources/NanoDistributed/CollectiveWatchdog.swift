import Foundation

/// Bounds the time one MPI call may block. A rank that dies makes `mpirun` kill the job, but a
/// rank that is alive and never joins a collective (stuck in I/O, a deadlock, a skipped call)
/// leaves the others spinning in MPI forever. Each collective arms the watchdog before it enters
/// MPI and disarms it after; a background thread checks the deadline about once a second and,
/// when it passes, calls `onTimeout` with a message saying what was stuck (the communicator then
/// prints it and aborts the job).
///
/// Arming costs a lock and two stores, so it is cheap enough for every collective.
final class CollectiveWatchdog: @unchecked Sendable {
    /// The exit code of a job aborted by the watchdog (the same as coreutils `timeout`).
    static let exitCode: Int32 = 124
    /// The default limit in seconds when `NANODECODER_COLLECTIVE_TIMEOUT` is not set.
    static let defaultTimeout: Double = 300

    /// Seconds from `NANODECODER_COLLECTIVE_TIMEOUT` (default 300); `nil`, meaning no limit, for `0`, `off` or `none`.
    static func timeoutFromEnvironment() -> Double? {
        guard let text = ProcessInfo.processInfo.environment["NANODECODER_COLLECTIVE_TIMEOUT"]?
            .trimmingCharacters(in: .whitespaces).lowercased(), !text.isEmpty else { return defaultTimeout }
        if text == "off" || text == "none" { return nil }
        guard let seconds = Double(text), seconds >= 0 else {
            FileHandle.standardError.write(Data("NANODECODER_COLLECTIVE_TIMEOUT='\(text)' is not a number of seconds; using \(Int(defaultTimeout))\n".utf8))
            return defaultTimeout
        }
        return seconds > 0 ? seconds : nil
    }

    /// Called once, on the watchdog thread, with a message naming the stuck call.
    var onTimeout: (@Sendable (String) -> Void)?

    private let condition = NSCondition()
    private var limit: Double?
    private var operation: StaticString?
    private var bytes = 0
    private var deadline = 0.0
    private var stopped = false
    private var running = true
    private var thread: Thread?

    /// - Parameter timeout: seconds one call may take; `nil` disables the check until `setTimeout`.
    init(timeout: Double?) {
        limit = timeout
        let thread = Thread { [weak self] in self?.run() }
        thread.name = "nanodecoder.collective-watchdog"
        self.thread = thread
        thread.start()
    }

    /// The current limit in seconds, `nil` when calls may block forever.
    var timeout: Double? {
        condition.lock(); defer { condition.unlock() }
        return limit
    }

    /// Changes the limit for calls armed from now on and returns the previous one.
    @discardableResult
    func setTimeout(_ seconds: Double?) -> Double? {
        condition.lock(); defer { condition.unlock() }
        let previous = limit
        limit = seconds.flatMap { $0 > 0 ? $0 : nil }
        return previous
    }

    /// Starts the clock for one call; `bytes` is only for the message.
    func arm(_ operation: StaticString, bytes: Int) {
        let now = Self.now()
        condition.lock()
        if let limit {
            self.operation = operation
            self.bytes = bytes
            deadline = now + limit
        }
        condition.unlock()
    }

    /// The call returned in time.
    func disarm() {
        condition.lock()
        operation = nil
        condition.unlock()
    }

    /// Ends the background thread (at `finalize`) and waits until it has, so that it cannot
    /// still be running while the process exits.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        if Thread.current != thread {
            while running { condition.wait() }
        }
        condition.unlock()
    }

    private func run() {
        condition.lock()
        defer {
            running = false
            condition.broadcast()
            condition.unlock()
        }
        while !stopped {
            if let operation, let limit, Self.now() >= deadline {
                let message = "\(operation) (\(bytes) bytes) did not finish within \(Self.format(limit)) s: another rank has "
                    + "probably died or is stuck outside this collective. Aborting the job. "
                    + "Set NANODECODER_COLLECTIVE_TIMEOUT (seconds, 0 = never) to change the limit."
                stopped = true
                condition.unlock()
                onTimeout?(message)   // does not return: it aborts the job
                condition.lock()
                return
            }
            // Checking about once a second is plenty for limits of minutes; short limits (tests) check more often.
            let tick = min(1.0, max(0.05, (limit ?? 10) / 10))
            _ = condition.wait(until: Date(timeIntervalSinceNow: tick))
        }
    }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    private static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}
