import Dispatch
import Foundation

/// Turns SIGINT/SIGTERM/SIGUSR1 into a flag the training loop checks after each step, so Ctrl-C
/// finishes the step, writes a checkpoint and exits cleanly. A second Ctrl-C exits at once.
public final class StopSignal: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var requested = false
    private var count = 0

    public init() {}

    public func install() {
        for sig in [SIGINT, SIGTERM, SIGUSR1] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.trigger() }
            source.resume()
            sources.append(source)
        }
    }

    private func trigger() {
        lock.lock(); defer { lock.unlock() }
        requested = true
        count += 1
        if count == 1 {
            FileHandle.standardError.write(Data("\nstopping after this step: writing a checkpoint (Ctrl-C again to quit now)\n".utf8))
        } else {
            exit(130)
        }
    }

    public var isRequested: Bool { lock.lock(); defer { lock.unlock() }; return requested }

    /// Stops as if a signal arrived (tests).
    public func request() { lock.lock(); requested = true; count = 1; lock.unlock() }
}
