/// Dynamic loss scaling for float16 mixed precision (Micikevicius et al. 2018, "Mixed Precision
/// Training"). Backward starts from `scale` instead of 1, so gradients that float16 would round
/// to zero stay representable; the optimizer divides the scale out again before clipping. When
/// the scaled gradients overflowed (a non-finite gradient norm) the step is skipped and the
/// scale halves; after `growthInterval` good steps in a row it doubles.
public struct LossScaler: Codable, Equatable, Sendable {
    /// The factor backward starts from.
    public private(set) var scale: Float
    /// Good steps in a row before the scale grows.
    public let growthInterval: Int
    /// Good steps since the last change of scale.
    public private(set) var goodSteps = 0
    /// Steps skipped so far because their gradients overflowed.
    public private(set) var skippedSteps = 0
    public static let growthFactor: Float = 2, backoffFactor: Float = 0.5
    /// Bounds that keep the scale a finite float with room to halve: 2⁻²⁴ … 2²⁴.
    public static let smallest: Float = 0x1p-24, largest: Float = 0x1p24

    public init(scale: Float = 65536, growthInterval: Int = 2000) {
        self.scale = min(max(scale, Self.smallest), Self.largest)
        self.growthInterval = max(1, growthInterval)
    }

    /// Takes this step's outcome: `finite` when every gradient was finite. Returns whether the
    /// optimizer should apply the step.
    public mutating func update(gradientsFinite finite: Bool) -> Bool {
        guard finite else {
            scale = max(scale * Self.backoffFactor, Self.smallest)
            goodSteps = 0
            skippedSteps += 1
            return false
        }
        goodSteps += 1
        if goodSteps >= growthInterval {
            scale = min(scale * Self.growthFactor, Self.largest)
            goodSteps = 0
        }
        return true
    }
}
