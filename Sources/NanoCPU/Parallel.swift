import CKernelMath
import Dispatch
import Foundation

// Raw pointers cross into worker closures; each kernel gives every worker disjoint output ranges.
extension UnsafeMutablePointer: @unchecked @retroactive Sendable {}
extension UnsafePointer: @unchecked @retroactive Sendable {}
extension UnsafeMutableRawPointer: @unchecked @retroactive Sendable {}
extension UnsafeRawPointer: @unchecked @retroactive Sendable {}

/// Splits work across the CPU backend's threads. The workers are oneDNN's own OpenMP (libgomp)
/// team, so GEMMs and Swift kernels share one set of threads: with a second pool (Dispatch) the
/// OpenMP threads spin after each GEMM and take the cores from the next Swift kernel (18% of
/// workload A's time). Falls back to Dispatch when libgomp is not in the process.
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
        let run = { @Sendable (c: Int) in
            let lo = n * c / chunks, hi = n * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
        if useOpenMP {
            withoutActuallyEscaping(run) { run in
                var task = run
                withUnsafeMutablePointer(to: &task) { context in
                    nd_parallel_run({ context, worker in
                        context!.assumingMemoryBound(to: (@Sendable (Int) -> Void).self).pointee(Int(worker))
                    }, context, Int32(chunks))
                }
            }
        } else {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: run)
        }
    }

    /// Whether the OpenMP team is used (NANODECODER_PARALLEL=dispatch forces Dispatch, for comparison).
    public static let useOpenMP: Bool =
        ProcessInfo.processInfo.environment["NANODECODER_PARALLEL"] != "dispatch" && nd_parallel_available() == 1
}
