import Foundation
import NanoCPU
import NanoEngine
@testable import NanoTraining
import Testing

/// `compile: true` replays the first step's kernels; the losses must be the eager ones.
@Suite(.serialized) struct CompiledStepTests {
    @Test(arguments: [1, 2])
    func compiledStepsGiveTheEagerLosses(accumulation: Int) throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.nLayer = 2
        config.maxIters = 12
        config.gradientAccumulationSteps = accumulation
        let eager = try trainLogged(config, runs: runs, name: "eager")
        config.compile = true
        let compiled = try trainLogged(config, runs: runs, name: "compiled")
        #expect(compiled.log.contains { $0.contains("compile: recorded") }, "\(compiled.log)")
        #expect(eager.trainer.losses.count == 12 && compiled.trainer.losses.count == 12)
        for step in 0..<12 {
            let a = eager.trainer.losses[step]!, b = compiled.trainer.losses[step]!
            #expect(abs(a - b) <= 1e-6 * abs(a), "step \(step): eager \(a), compiled \(b)")
        }
        // Evaluation ran between replays (eval_interval 4) without disturbing them.
        #expect(eager.trainer.state.bestValLoss == compiled.trainer.state.bestValLoss)
    }

    /// Stopped (as by Ctrl-C) and resumed, a compiled run records again and still gives the eager losses.
    @Test func aResumedCompiledRunGivesTheEagerLosses() throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        let eager = try trainLogged(config, runs: runs, name: "eager")
        config.compile = true
        let resumed = try trainStoppedAndResumed(config, runDir: runs + "/resumed", stopAt: 5).losses
        for step in 0..<config.maxIters {
            let a = eager.trainer.losses[step]!, b = resumed[step]!
            #expect(abs(a - b) <= 1e-6 * abs(a), "step \(step): eager \(a), compiled + resumed \(b)")
        }
    }

    @Test func whatCannotReplayRunsEagerlyWithAMessage() throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.compile = true
        config.dropout = 0.1
        let run = try trainLogged(config, runs: runs, name: "dropout")
        #expect(run.log.contains { $0.contains("compile: running eagerly: dropout") }, "\(run.log)")
        #expect(run.trainer.losses.count == config.maxIters)
    }

    /// Memory the recording replays into is never handed to another tensor.
    @Test func pinnedBlocksStayOutOfTheFreeList() throws {
        let allocator = CachingAllocator()
        let a = allocator.allocate(4096)
        allocator.pin([a: 4096])
        allocator.release(a, byteCount: 4096)
        let b = allocator.allocate(4096)
        #expect(a != b)
        allocator.unpin([a: 4096])
        #expect(allocator.allocate(4096) == a)
        allocator.release(b, byteCount: 4096)
    }
}
