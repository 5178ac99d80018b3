import NanoCPU
@testable import NanoCUDA
import NanoEngine
import Testing

/// The conformance cases `nanodecoder cuda conformance` runs on a GPU, kept working here: on a CPU
/// backend standing in for `cuda:5` every case runs and agrees exactly with the CPU (the same
/// kernels), so on a GPU a difference is the GPU's.
@Suite struct BackendConformanceTests {
    @Test func everyCaseRunsAndAgreesOnAStandIn() throws {
        BackendRegistry.register(CPUBackend(standingIn: .cuda(5)))
        let results = BackendConformance.compare(.cuda(5))
        #expect(results.count >= 35)
        for r in results {
            #expect(r.error == nil && r.worst == 0, "\(r.name): \(r.error ?? "difference \(r.worst!)")")
        }
    }

    /// The comparison catches a difference: a case that computes something else on one device fails.
    @Test func aDifferenceFailsTheCase() throws {
        BackendRegistry.register(CPUBackend(standingIn: .cuda(5)))
        let odd = BackendConformance.Case("differs on cuda:5") { d in [try Tensor([1, d == .cpu ? 2 : 2.5], shape: [2], device: d)] }
        let result = try #require(BackendConformance.compare(.cuda(5), cases: [odd]).first)
        #expect(!result.passed && result.worst == 0.25)
    }
}
