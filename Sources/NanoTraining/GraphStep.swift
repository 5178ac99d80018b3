import NanoEngine

/// A training step's forward and backward that replays without the Swift code that built it:
/// `CompiledStep` on the CPU, `GraphStep` on a device that records graphs.
public protocol ReplayableStep: AnyObject {
    /// One step's forward and backward by replay, with the same batches eager mode would draw;
    /// nil (nothing run) when a batch's shape differs from the recorded one.
    func run(task: LanguageModelTask, generator: Generator, shard: DataShard) throws -> (lossSum: Float, tokens: Int)?
    /// For the log: what was recorded.
    var summary: String { get }
}

extension CompiledStep: ReplayableStep {
    public var summary: String { "recorded \(recordedCount) kernels, \(kernelCount) after fusing row-wise chains" }
}

/// `compile: true` on a device whose backend records graphs (`GraphCapturing`: CUDA graphs on
/// NVIDIA GPUs). After one eager warm-up step (which fills the allocator's cache and the GEMM
/// plans), the next step's forward and backward over every micro-step, gradients zeroed first,
/// are recorded as one graph, and every step from then on writes its batches into the recorded
/// input tensors and replays the graph: one launch instead of thousands, and no Swift on the
/// host between kernels. The optimizer update stays eager (its learning rate and clipping
/// factor are host values that change every step).
public final class GraphStep: ReplayableStep {
    private let graph: any DeviceGraph
    /// Per micro-step: the token and target tensors the graph reads, and the LM loss it writes.
    private let inputs: [(x: Tensor, y: Tensor)]
    private let losses: [Tensor]
    public var summary: String { graph.summary }

    private init(graph: any DeviceGraph, inputs: [(x: Tensor, y: Tensor)], losses: [Tensor]) {
        self.graph = graph; self.inputs = inputs; self.losses = losses
    }

    /// Records one step on `device` and runs it (by replaying the graph once). Returns the step
    /// and the summed LM loss and tokens of its micro-steps.
    public static func capture(task: LanguageModelTask, device: Device, microSteps: Int, generator: Generator,
                        shard: DataShard) throws -> (step: GraphStep, lossSum: Float, tokens: Int) {
        guard let backend = try device.backend as? GraphCapturing else {
            throw TensorError.backendUnavailable(device: device, message: "its backend does not record graphs")
        }
        // Batches come from the generator in eager order; the graph reads these tensors.
        let inputs = try (0..<microSteps).map { _ in try task.trainingBatch(generator: generator, shard: shard) }
        var losses: [Tensor] = []
        // Language-model targets are tokens, never ignored: the loss needs no read-back of them.
        let graph = try GraphRecording.$targetsAreAllValid.withValue(true) {
            try backend.captureGraph {
                task.module.zeroGrad()
                for (x, y) in inputs {
                    let loss = try task.model.loss(x, targets: y, training: true)
                    losses.append(loss.lm)
                    try loss.total.backward(gradient: Tensor.full([], value: 1 / Float(microSteps)))
                }
            }
        }
        let step = GraphStep(graph: graph, inputs: inputs, losses: losses)
        try graph.replay()
        return (step, try step.lossSum(), inputs.reduce(0) { $0 + $1.x.count })
    }

    public func run(task: LanguageModelTask, generator: Generator, shard: DataShard) throws -> (lossSum: Float, tokens: Int)? {
        let batches = try inputs.map { _ in try task.trainingBatch(generator: generator, shard: shard) }
        for (batch, recorded) in zip(batches, inputs) where batch.x.shape != recorded.x.shape || batch.y.shape != recorded.y.shape {
            return nil
        }
        for (batch, recorded) in zip(batches, inputs) {
            try recorded.x.assign(batch.x)
            try recorded.y.assign(batch.y)
        }
        try graph.replay()
        return (try lossSum(), batches.reduce(0) { $0 + $1.x.count })
    }

    private func lossSum() throws -> Float { try losses.reduce(0) { $0 + (try $1.item()) } }
}
