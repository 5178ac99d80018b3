import NanoCPU
import NanoTestSupport
@testable import NanoEngine
import Testing

/// `KernelTape.fuseRowChains`: which kernels fuse, and that a fused chain computes what the
/// kernels computed one after the other.
@Suite(.serialized) struct KernelTapeTests {
    private let split: (Int, Int, @escaping @Sendable (Range<Int>) -> Void) -> Void = { rows, cost, body in
        Parallel.forRange(rows, costPerItem: cost) { body($0) }
    }

    /// Residual add then LayerNorm (what every GPT block does), recorded on the CPU backend,
    /// fused, and replayed into zeroed outputs: bitwise the eager values. 333 rows of 40 cross
    /// the fused kernel's row blocks unevenly.
    @Test func residualAddThenLayerNormFusesIntoOneKernelWithTheSameValues() throws {
        let a = try randomTensor([3, 111, 40], seed: 1), b = try randomTensor([3, 111, 40], seed: 2)
        let w = try randomTensor([40], seed: 3), bias = try randomTensor([40], seed: 4)
        let tape = KernelTape()
        CPUBackend.shared.recording = tape
        let sum = try a + b
        let y = try sum.layerNorm(weight: w, bias: bias)
        CPUBackend.shared.recording = nil
        tape.endSegment()
        let (expectedSum, expectedY) = (try sum.toArray(), try y.toArray())
        #expect(tape.names == ["binary", "layerNorm"])
        #expect(tape.fuseRowChains(parallel: split) == 1)
        #expect(tape.names == ["binary+layerNorm"])
        CPUBackend.shared.fill(sum, value: 0)
        CPUBackend.shared.fill(y, value: 0)
        tape.replay(segment: 0)
        #expect(try sum.toArray() == expectedSum)
        #expect(try y.toArray() == expectedY)
    }

    /// Row kernels over host arrays: `first` writes P, `second` reads P the given way and writes Q.
    private func record(_ tape: KernelTape, _ p: UnsafeMutablePointer<Float>, _ q: UnsafeMutablePointer<Float>, rows: Int,
                        secondReadsPAs rowBytes: Int, secondWritesP: Bool = false) {
        let pAll = RowKernel.Access(UnsafeRawPointer(p), bytes: rows * 4, rowBytes: 4)
        tape.record(CPUBackend.shared, [], name: "first", rows: RowKernel(rows: rows, costPerRow: 1, reads: [], writes: [pAll]) { r in
            for i in r { p[i] = Float(i) }
        }) { _, _ in for i in 0..<rows { p[i] = Float(i) } }
        let pRead = RowKernel.Access(UnsafeRawPointer(p), bytes: rows * 4, rowBytes: rowBytes)
        let qAll = RowKernel.Access(UnsafeRawPointer(q), bytes: rows * 4, rowBytes: 4)
        tape.record(CPUBackend.shared, [], name: "second",
                    rows: RowKernel(rows: rows, costPerRow: 1, reads: [pRead], writes: [qAll] + (secondWritesP ? [pRead] : [])) { r in
            for i in r { q[i] = p[i] * 2 }
        }) { _, _ in for i in 0..<rows { q[i] = p[i] * 2 } }
    }

    @Test func onlyRowAlignedKernelsInOneSegmentFuse() throws {
        let rows = 5000
        let p = UnsafeMutablePointer<Float>.allocate(capacity: rows), q = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        defer { p.deallocate(); q.deallocate() }
        // Row r of the second kernel reads row r of the first's output: fused, and correct.
        let aligned = KernelTape()
        record(aligned, p, q, rows: rows, secondReadsPAs: 4)
        aligned.endSegment()
        #expect(aligned.fuseRowChains(parallel: split) == 1)
        q.update(repeating: -1, count: rows)
        aligned.replay(segment: 0)
        #expect((0..<rows).allSatisfy { q[$0] == Float(2 * $0) })
        // The second kernel reads all of P in every row (rowBytes 0): it must wait for the whole first kernel.
        let whole = KernelTape()
        record(whole, p, q, rows: rows, secondReadsPAs: 0)
        whole.endSegment()
        #expect(whole.fuseRowChains(parallel: split) == 0)
        // P split into rows of another size.
        let otherRows = KernelTape()
        record(otherRows, p, q, rows: rows, secondReadsPAs: 8)
        otherRows.endSegment()
        #expect(otherRows.fuseRowChains(parallel: split) == 0)
        // A segment boundary between them (a micro-step's end).
        let tape = KernelTape()
        tape.record(CPUBackend.shared, [], name: "first", rows: RowKernel(rows: rows, costPerRow: 1, reads: [],
                    writes: [RowKernel.Access(UnsafeRawPointer(p), bytes: rows * 4, rowBytes: 4)]) { _ in }) { _, _ in }
        tape.endSegment()
        tape.record(CPUBackend.shared, [], name: "second", rows: RowKernel(rows: rows, costPerRow: 1,
                    reads: [RowKernel.Access(UnsafeRawPointer(p), bytes: rows * 4, rowBytes: 4)], writes: []) { _ in }) { _, _ in }
        tape.endSegment()
        #expect(tape.fuseRowChains(parallel: split) == 0)
        #expect(tape.names == ["first", "second"])
    }
}
