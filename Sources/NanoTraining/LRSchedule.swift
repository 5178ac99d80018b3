import Foundation

/// Linear warmup, then cosine decay to min_lr at lr_decay_iters, then min_lr (as in nanoGPT).
public struct LRSchedule: Sendable {
    public var learningRate: Float, minLr: Float
    public var warmupIters: Int, decayIters: Int
    public var decay: Bool

    public init(_ c: TrainConfig) {
        learningRate = c.learningRate; minLr = c.minLr; warmupIters = c.warmupIters; decayIters = c.lrDecayIters; decay = c.decayLr
    }

    /// Learning rate for (0-based) iteration `it`.
    public func callAsFunction(_ it: Int) -> Float {
        guard decay else { return learningRate }
        if it < warmupIters { return learningRate * Float(it + 1) / Float(warmupIters + 1) }
        if it > decayIters { return minLr }
        let ratio = Float(it - warmupIters) / Float(max(decayIters - warmupIters, 1))
        let coefficient = 0.5 * (1 + Foundation.cos(Float.pi * ratio))
        return minLr + coefficient * (learningRate - minLr)
    }
}
