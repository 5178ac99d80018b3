import NanoCPU
@testable import NanoEngine
import NanoNN
import Testing

@Suite struct AutogradTests {
    @Test func gradientsAccumulateAcrossBackwardCalls() throws {
        let x = try Tensor([1, 2, 3], shape: [3])
        x.requiresGrad = true
        try (x * x).sum().backward()
        try (x * x).sum().backward()
        #expect(try x.grad!.toArray() == [4, 8, 12])
        x.zeroGrad()
        #expect(x.grad == nil)
    }

    @Test func reusedTensorSumsGradientsFromEveryUse() throws {
        let x = try Tensor([0.5, -1], shape: [2])
        x.requiresGrad = true
        let y = try x * 3 + x.square()   // dy/dx = 3 + 2x
        try y.sum().backward()
        #expect(try x.grad!.toArray() == [4, 1])
    }

    @Test func noGradScopeRecordsNothing() throws {
        let x = try Tensor([1, 2], shape: [2])
        x.requiresGrad = true
        let y = try withNoGrad { try x.gelu() }
        #expect(!y.requiresGrad && !y.hasGraph)
        #expect(throws: TensorError.self) { try y.sum().backward() }
    }

    @Test func backwardReleasesTheGraph() throws {
        let x = try Tensor([1, 2], shape: [2])
        x.requiresGrad = true
        let loss = try x.gelu().sum()
        #expect(loss.hasGraph)
        try loss.backward()
        #expect(!loss.hasGraph)
    }

    /// The graph holds what backward functions saved, not every intermediate: a residual add's
    /// inputs (whose values its backward never reads) are freed once forward code drops them.
    @Test func intermediatesNoBackwardSavedAreFreedAfterForward() throws {
        let allocator = CPUBackend.shared.allocator
        let x = try Tensor.randn([512, 512], generator: Generator(seed: 1))   // 1 MiB
        x.requiresGrad = true
        let before = allocator.liveBytes
        let loss = try { () throws -> Tensor in
            var h = x
            for _ in 0..<8 { h = try h + x }   // 8 sums of 1 MiB; add saves nothing
            return try h.sum()
        }()
        #expect(allocator.liveBytes - before < 1 << 20, "\(allocator.liveBytes - before) bytes still held by the graph")
        try loss.backward()
        #expect(try x.grad!.toArray().allSatisfy { $0 == 9 })
    }

    @Test func backwardOnNonScalarNeedsAGradient() throws {
        let x = try Tensor([1, 2], shape: [2])
        x.requiresGrad = true
        let y = try x * 2
        #expect(throws: TensorError.self) { try y.backward() }
        try y.backward(gradient: Tensor([1, 1], shape: [2]))
        #expect(try x.grad!.toArray() == [2, 2])
    }

    @Test func moduleParametersAreDiscoveredByReflection() throws {
        final class Block: Module {
            var norm = try! LayerNorm(4)
            var layers = [try! Linear(4, 8), try! Linear(8, 4, bias: false)]
            var optional: Linear? = nil
            var notAParameter = try! Tensor.zeros([3])
        }
        let names = Block().namedParameters().map(\.name)
        #expect(names == ["norm.weight", "norm.bias", "layers.0.weight", "layers.0.bias", "layers.1.weight"])
    }
}
