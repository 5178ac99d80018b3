import Foundation
import NanoCPU
@testable import NanoEngine
import NanoNN
import Testing

@Suite(.serialized) struct RandomTests {
    @Test func philoxMatchesTheKnownAnswerVector() {
        // Random123 known-answer test: philox4x32-10, counter 0, key 0.
        #expect(Philox.block(counter: 0, seed: 0) == SIMD4<UInt32>(0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8))
    }

    @Test(arguments: [RandomDistribution.normal(mean: 0, std: 1), .uniform(low: -1, high: 2),
                      .truncatedNormal(mean: 0, std: 0.02, low: -0.04, high: 0.04), .bernoulli(p: 0.3)])
    func drawsAreIdenticalWhateverTheThreadCount(_ d: RandomDistribution) throws {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 1
        let one = try Tensor.random([100_003], d, generator: Generator(seed: 42)).toArray()
        Parallel.threads = 2
        let two = try Tensor.random([100_003], d, generator: Generator(seed: 42)).toArray()
        Parallel.threads = 7
        let seven = try Tensor.random([100_003], d, generator: Generator(seed: 42)).toArray()
        #expect(one == two && two == seven)
    }

    @Test func distributionsHaveTheirMoments() throws {
        let n = 200_000
        func moments(_ v: [Float]) -> (Double, Double) {
            let m = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
            let s = v.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(v.count)
            return (m, s.squareRoot())
        }
        let (nm, ns) = moments(try Tensor.randn([n], mean: 1, std: 2, generator: Generator(seed: 1)).toArray())
        #expect(abs(nm - 1) < 0.02 && abs(ns - 2) < 0.02)
        let (um, _) = moments(try Tensor.uniform([n], low: 2, high: 4, generator: Generator(seed: 2)).toArray())
        #expect(abs(um - 3) < 0.01)
        let b = try Tensor.random([n], .bernoulli(p: 0.25), generator: Generator(seed: 3)).toArray()
        #expect(Set(b) == [0, 1] && abs(moments(b).0 - 0.25) < 0.01)
        let t = try Tensor.random([n], .truncatedNormal(mean: 0, std: 1, low: -2, high: 2), generator: Generator(seed: 4)).toArray()
        #expect(t.allSatisfy { $0 >= -2 && $0 <= 2 })
        // Std of a standard normal truncated at ±2σ is 0.8796.
        #expect(abs(moments(t).1 - 0.8796) < 0.01)
    }

    @Test func consecutiveDrawsDifferAndSeedsReproduce() throws {
        let g = Generator(seed: 7)
        let a = try Tensor.randn([8], generator: g).toArray(), b = try Tensor.randn([8], generator: g).toArray()
        #expect(a != b)
        #expect(try Tensor.randn([8], generator: Generator(seed: 7)).toArray() == a)
    }
}

@Suite struct AllocatorTests {
    @Test func trainingStepsAfterTheFirstAllocateNoNewMemory() throws {
        let backend = try #require(try Device.cpu.backend as? CPUBackend)
        final class TinyNet: Module {
            let fc1 = try! Linear(32, 64), fc2 = try! Linear(64, 10), norm = try! LayerNorm(32)
        }
        let net = TinyNet()
        let x = try Tensor.randn([16, 32], generator: Generator(seed: 1))
        let targets = try Tensor(indices: (0..<16).map { Int32($0 % 10) }, shape: [16])
        var counts: [Int] = []
        for _ in 0..<5 {
            net.zeroGrad()
            let h = try net.fc1(net.norm(x)).gelu()
            let loss = try net.fc2(h).crossEntropy(targets: targets)
            try loss.backward()
            withNoGrad {
                for p in net.parameters() { backend.binary(.sub, p, p.grad!, p) }
            }
            counts.append(backend.allocator.systemAllocations)
        }
        #expect(counts[1] == counts[4], "system allocations per step: \(counts)")
    }
}

@Suite struct ErrorTests {
    @Test func shapeMismatchNamesTheOpAndShapes() throws {
        let a = try Tensor.zeros([2, 3]), b = try Tensor.zeros([4, 3])
        do {
            _ = try a + b
            Issue.record("expected an error")
        } catch let e as TensorError {
            #expect(e.description.contains("add") && e.description.contains("[2, 3]") && e.description.contains("[4, 3]"))
        }
        #expect(throws: TensorError.self) { try a.matmul(b) }
        #expect(throws: TensorError.self) { try a.linear(weight: Tensor.zeros([5, 4])) }
        #expect(throws: TensorError.self) { try a.reshaped([5]) }
        #expect(throws: TensorError.self) { try a.layerNorm(weight: Tensor.zeros([2]), bias: nil) }
        #expect(throws: TensorError.self) { try a.sum(axes: [2]) }
    }

    @Test func dtypeMismatchIsAnError() throws {
        let idx = try Tensor(indices: [0, 1], shape: [2])
        #expect(throws: TensorError.self) { try idx.gelu() }
        #expect(throws: TensorError.self) { try Tensor.zeros([2, 3]).crossEntropy(targets: Tensor.zeros([2])) }
    }

    @Test func outOfRangeIndicesAreErrorsNotCrashes() throws {
        let table = try Tensor.zeros([4, 2])
        #expect(throws: TensorError.indexOutOfRange(op: "indexSelect", index: 4, bound: 4)) {
            try table.embedding(Tensor(indices: [0, 4], shape: [2]))
        }
        #expect(throws: TensorError.self) { try table.embedding(Tensor(indices: [-1], shape: [1])) }
        #expect(throws: TensorError.self) { try table.crossEntropy(targets: Tensor(indices: [0, 1, 2, 9], shape: [4])) }
        #expect(throws: TensorError.self) { try Tensor(indices: [3], shape: [1]).oneHot(classes: 3) }
        #expect(throws: TensorError.self) { try table.topK(3) }
    }

    @Test func backwardWithoutAGraphExplainsWhy() throws {
        let x = try Tensor([1], shape: [1])
        do {
            try x.backward()
            Issue.record("expected an error")
        } catch let e as TensorError {
            #expect(e.description.contains("does not require grad"))
        }
    }
}

/// A gradient norm over many tensors, computed on their device: every tensor counted once (empty
/// ones too), tensors on several devices and non-float tensors refused by name.
@Suite struct GradientNormTests {
    @Test func manyTensorsMakeOneNorm() throws {
        let a = try Tensor([1, -2, 3], shape: [3]), b = try Tensor([0.5], shape: [1]), empty = try Tensor.zeros([0])
        let standIn = Device.cuda(9)
        BackendRegistry.register(CPUBackend(standingIn: standIn))
        let c = try Tensor([2, 2], shape: [2]).to(standIn)
        #expect(try Tensor.gradientNorm([a, empty, b]).item() == Float((14.25 as Double).squareRoot()))
        #expect(try Tensor.gradientNorm([c]).device == standIn && (try Tensor.gradientNorm([c]).item()) == Float((8 as Double).squareRoot()))
        #expect { _ = try Tensor.gradientNorm([]) } throws: { "\($0)".contains("gradientNorm") }
        #expect { _ = try Tensor.gradientNorm([a, c]) } throws: { "\($0)".contains("cuda:9") }
        #expect { _ = try Tensor.gradientNorm([a, try Tensor(indices: [1], shape: [1])]) } throws: { "\($0)".contains("gradientNorm") }
    }
}

/// Recording a graph (`captureGraph`): the CPU records a kernel tape and replays it; ops that
/// would read device values back refuse, or take them on the device, as a GPU needs.
@Suite struct GraphRecordingTests {
    @Test func crossEntropyRecordsOnlyWithTargetsVouchedForAndReplaysTheEagerGradient() throws {
        let device = Device.cuda(11)
        let backend = CPUBackend(standingIn: device)
        BackendRegistry.register(backend)
        let logits = try Tensor([0.5, -1, 2, 0, 1, 3], shape: [2, 3]).to(device)
        let targets = try Tensor(indices: [2, 0], shape: [2]).to(device)
        logits.requiresGrad = true
        // Eager reference.
        try logits.crossEntropy(targets: targets).backward(gradient: try Tensor.full([], value: 0.5, device: device))
        let eager = try logits.grad!.toArray()
        // Without the promise, counting targets would read them back: refused with the reason.
        #expect { _ = try backend.captureGraph { _ = try logits.crossEntropy(targets: targets) } } throws: {
            "\($0)".contains("targetsAreAllValid")
        }
        var loss: Tensor? = nil
        let graph = try GraphRecording.$targetsAreAllValid.withValue(true) {
            try backend.captureGraph {
                logits.zeroGrad()
                let l = try logits.crossEntropy(targets: targets)
                try l.backward(gradient: try Tensor.full([], value: 0.5, device: device))
                loss = l
            }
        }
        try graph.replay()
        #expect(try logits.grad!.toArray() == eager)
        #expect(abs(try loss!.item() - (try logits.crossEntropy(targets: targets).item())) < 1e-6)
    }
}

/// log outside (0, inf) gives the IEEE answers (the vectorised polynomial sees only the mantissa;
/// the emulated GPU's conformance run found it returning finite values for negative inputs).
@Suite struct LogEdgeTests {
    @Test func logOfNegativeZeroInfinityAndNaN() throws {
        let values: [Float] = [-1, -0.5, 0, .infinity, .nan, 2, 1e-30] + Array(repeating: 4, count: 20)
        let y = try Tensor(values, shape: [values.count]).log().toArray()
        #expect(y[0].isNaN && y[1].isNaN && y[2] == -.infinity && y[3] == .infinity && y[4].isNaN)
        #expect(abs(y[5] - log(2)) < 1e-6 && abs(y[6] - log(1e-30)) < 1e-4 && abs(y[26] - log(4)) < 1e-6)
    }
}
