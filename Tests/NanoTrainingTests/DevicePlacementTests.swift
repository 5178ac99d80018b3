import Foundation
import NanoCPU
import NanoEngine
@testable import NanoTraining
import Testing

/// `device.type`: a run on another device keeps every tensor there. A CPU backend standing in
/// for `cuda:7` (`CPUBackend(standingIn:)`) runs the same kernels, so the run must give the CPU
/// run's losses bitwise; any tensor made on the CPU by mistake fails the run, because ops refuse
/// to mix devices.
@Suite(.serialized) struct DevicePlacementTests {
    static let device = Device.cuda(7)
    init() { BackendRegistry.register(CPUBackend(standingIn: Self.device)) }

    @Test func aRunOnAnotherDeviceKeepsItsTensorsThereAndGivesTheCPULosses() throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.maxIters = 10; config.evalInterval = 5
        let cpu = try trainLogged(config, runs: runs, name: "cpu")
        config.device = "cuda:7"
        let other = try trainLogged(config, runs: runs, name: "other")
        #expect(other.log.contains { $0.contains("cuda:7 stood in for by cpu") }, "\(other.log)")
        for step in 0..<config.maxIters { #expect(cpu.trainer.losses[step] == other.trainer.losses[step], "step \(step)") }
        let params = other.trainer.task.module.parameters()
        #expect(!params.isEmpty && params.allSatisfy { $0.device == Self.device && ($0.grad?.device ?? Self.device) == Self.device })
        // Checkpoints are read back from the device: the same bytes as the CPU run's.
        for file in ["model.safetensors", "optimizer.safetensors"] {
            let a = try SafeTensors.read(runs + "/cpu/checkpoint/" + file).tensors, b = try SafeTensors.read(runs + "/other/checkpoint/" + file).tensors
            #expect(a.count == b.count && !a.isEmpty)
            for (name, t) in a { #expect(t.bytes() == b[name]?.bytes(), "\(file): \(name)") }
        }
        // Sampling runs where the model is.
        let model = try #require(other.trainer.model)
        var options = SamplingOptions(); options.maxNewTokens = 5
        let tokens = try Device.run(Self.device) { try Sampler(model: model).generate(prompt: [1, 2], options: options) }
        #expect(tokens.count == 5)
    }

    /// `compile: true` on a device: one eager warm-up step, then the next step's forward and
    /// backward recorded as a graph (`GraphStep`; the stand-in records a kernel tape where a GPU
    /// records a CUDA graph) and replayed with each new batch. The losses are the eager ones,
    /// bitwise, with gradient accumulation too, and evaluations in between do not disturb it.
    @Test(arguments: [1, 2])
    func compiledStepsOnADeviceReplayAGraphWithTheEagerLosses(accumulation: Int) throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.device = "cuda:7"
        config.maxIters = 10; config.evalInterval = 4
        config.gradientAccumulationSteps = accumulation
        let eager = try trainLogged(config, runs: runs, name: "eager")
        config.compile = true
        let graph = try trainLogged(config, runs: runs, name: "graph")
        #expect(graph.log.contains { $0.contains("compile: recorded a kernel tape of") && $0.contains("at step 1, after a warm-up step") }, "\(graph.log)")
        #expect(eager.trainer.losses.count == 10 && graph.trainer.losses.count == 10)
        for step in 0..<10 { #expect(eager.trainer.losses[step] == graph.trainer.losses[step], "step \(step)") }
        #expect(eager.trainer.state.bestValLoss == graph.trainer.state.bestValLoss)
        let a = try SafeTensors.read(runs + "/eager/checkpoint/model.safetensors").tensors
        let b = try SafeTensors.read(runs + "/graph/checkpoint/model.safetensors").tensors
        for (name, t) in a { #expect(t.bytes() == b[name]?.bytes(), "\(name)") }
    }

    /// Stopped and resumed, a compiled run on a device warms up and records again, and gives the
    /// straight compiled run's losses bitwise: the optimizer's step count, which the recorded step
    /// reads from device memory, resumes with the checkpoint.
    @Test func aCompiledRunOnADeviceResumesWithTheSameLosses() throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.device = "cuda:7"
        config.compile = true
        let straight = try trainLogged(config, runs: runs, name: "straight")
        let resumed = try trainStoppedAndResumed(config, runDir: runs + "/resumed", stopAt: 3)
        #expect(resumed.first.state.step == 3 && resumed.losses.count == config.maxIters)
        for step in 0..<config.maxIters { #expect(straight.trainer.losses[step] == resumed.losses[step], "step \(step)") }
    }

    @Test func stoppingAndResumingOnAnotherDeviceMatchesTrainingStraight() throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.device = "cuda:7"
        let straight = try trainLogged(config, runs: runs, name: "straight")
        let resumed = try trainStoppedAndResumed(config, runDir: runs + "/resumed", stopAt: 3)
        for step in 0..<config.maxIters { #expect(straight.trainer.losses[step] == resumed.losses[step], "step \(step)") }
    }

    @Test func aModelOnTheWrongDeviceOrABadDeviceNameIsAConfigError() throws {
        let data = try makeDataset()
        var config = tinyConfig(dataset: data, runs: NSTemporaryDirectory() + "runs-\(UUID().uuidString)")
        let cpuTask = try LanguageModelTask(config: config)
        config.device = "cuda:7"
        #expect { try Trainer(config: config, runDir: config.outDir + "/t", task: cpuTask) } throws: { error in
            "\(error)".contains("device.type") && "\(error)".contains("parameters are on cpu")
        }
        #expect { try TrainConfig.load(file: nil, overrides: ["device.type=gpu"]) } throws: { error in
            "\(error)".contains("device.type") && "\(error)".contains("expected cpu, cuda or cuda:N")
        }
    }

    @Test func tensorsMoveBetweenDevicesWithTheirGradients() throws {
        let x = try Tensor([1, -2, 3], shape: [3]); x.requiresGrad = true
        let y = try x.to(Self.device)
        #expect(y.device == Self.device)
        #expect(try y.toArray() == [1, -2, 3])
        try (y * y).sum().backward()
        #expect(x.grad?.device == .cpu)
        #expect(try x.grad!.toArray() == [2, -4, 6])
        // Mixing devices in one op is refused, naming the op.
        #expect { _ = try x + y } throws: { "\($0)".contains("cuda:7") }
        let z = try Device.run(Self.device) { try Tensor.zeros([2]) }
        #expect(z.device == Self.device)
        #expect(try Tensor.zeros([2]).device == .cpu)
        try z.assign(try Tensor([5, 6], shape: [2]))
        #expect(try z.toArray() == [5, 6])
    }
}
