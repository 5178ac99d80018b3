import Dispatch
import Foundation

// Raw pointers cross into worker closures; each kernel gives every worker disjoint output ranges.
extension UnsafeMutablePointer: @unchecked @retroactive Sendable {}
extension UnsafePointer: @unchecked @retroactive Sendable {}
extension UnsafeMutableRawPointer: @unchecked @retroactive Sendable {}
extension UnsafeRawPointer: @unchecked @retroactive Sendable {}

/// Splits work across the CPU backend's threads (one owner per phase: the Swift kernels use
/// these workers, oneDNN its own OpenMP team between them).
public enum Parallel {
    /// Worker count: NANODECODER_THREADS, or the number of cores. Settable (tests compare thread counts).
    nonisolated(unsafe) public static var threads: Int = {
        if let s = ProcessInfo.processInfo.environment["NANODECODER_THREADS"], let n = Int(s), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }()

    /// Runs body over [0, n) in at most `threads` contiguous chunks; serially when the work
    /// (n × costPerItem, in rough element-operations) is too small to pay for a thread hop.
    @inline(__always)
    public static func forRange(_ n: Int, costPerItem: Int = 1, _ body: @Sendable (Range<Int>) -> Void) {
        let chunks = min(threads, n)
        if chunks <= 1 || n * costPerItem < 32_768 {
            if n > 0 { body(0..<n) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = n * c / chunks, hi = n * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}
