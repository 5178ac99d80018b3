import Foundation

/// A progress bar with rate and ETA on stderr. On a terminal it redraws one line in place; when
/// stderr is not a terminal (CI logs, pipes) it prints a plain line at every 10% instead.
public final class ProgressBar: @unchecked Sendable {
    public let label: String
    public let total: Int
    public let unit: String
    private let isTerminal: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastPlainDecile = -1
    private var current = 0
    private var visible = false
    private let lock = NSLock()

    public init(_ label: String, total: Int, unit: String = "", terminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.isTerminal = terminal
    }

    /// Moves the bar to `done` (redraws at most 10 times a second).
    public func update(_ done: Int) {
        lock.lock(); defer { lock.unlock() }
        current = min(done, total)
        if isTerminal {
            guard Date().timeIntervalSince(lastDraw) > 0.1 || current == total else { return }
            lastDraw = Date()
            write("\r\u{1B}[K" + line())
            visible = true
        } else {
            let decile = current * 10 / total
            if decile > lastPlainDecile {
                lastPlainDecile = decile
                write(line() + "\n")
            }
        }
    }

    /// Clears the bar so another line can be printed (call `redraw` afterwards).
    public func clear() {
        lock.lock(); defer { lock.unlock() }
        if isTerminal && visible { write("\r\u{1B}[K"); visible = false }
    }

    public func redraw() {
        lock.lock(); defer { lock.unlock() }
        if isTerminal { write("\r\u{1B}[K" + line()); visible = true }
    }

    /// Ends the bar's line.
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        if isTerminal && visible { write("\n"); visible = false }
    }

    /// "label [#####-----]  45% 900/2000 tok 12.3/s ETA 1m20s"
    public func line() -> String {
        let fraction = Double(current) / Double(total)
        let width = 24, filled = Int(fraction * Double(width))
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(current) / elapsed : 0
        let eta = rate > 0 ? Double(total - current) / rate : .nan
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        return String(format: "%@ [%@] %3d%% %d/%d%@ %.1f/s ETA %@", label, bar, Int(fraction * 100), current, total,
                      unit.isEmpty ? "" : " " + unit, rate, Self.duration(eta))
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }

    private func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
