import Foundation

/// A seeded source of random numbers for tensor initialisation, dropout and sampling.
///
/// Counter-based (Philox4x32-10): the value of element i of a draw depends only on the seed
/// and the draw's offset, never on thread count or scheduling. `offset` advances with every draw
/// and is part of a checkpoint's state.
public final class Generator: @unchecked Sendable {
    public let seed: UInt64
    public private(set) var offset: UInt64
    private let lock = NSLock()

    public init(seed: UInt64, offset: UInt64 = 0) {
        self.seed = seed
        self.offset = offset
    }

    /// Moves the stream to a saved position (resuming from a checkpoint).
    public func restore(offset: UInt64) {
        lock.lock(); defer { lock.unlock() }
        self.offset = offset
    }

    /// Reserves counters for `count` values and returns the first one.
    public func reserve(count: Int) -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        let start = offset
        offset &+= UInt64((count + 3) / 4 * 4)
        return start
    }

    nonisolated(unsafe) private static var current = Generator(seed: 0)
    private static let defaultLock = NSLock()

    /// The process-wide generator used when none is passed.
    public static var `default`: Generator {
        defaultLock.lock(); defer { defaultLock.unlock() }
        return current
    }

    /// Resets the default generator (a checkpoint restores its offset too).
    public static func manualSeed(_ seed: UInt64, offset: UInt64 = 0) {
        defaultLock.lock(); defer { defaultLock.unlock() }
        current = Generator(seed: seed, offset: offset)
    }
}

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
public enum Philox {
    @inlinable @inline(__always)
    public static func block(counter: UInt64, seed: UInt64) -> SIMD4<UInt32> {
        var c = SIMD4<UInt32>(UInt32(truncatingIfNeeded: counter), UInt32(truncatingIfNeeded: counter >> 32), 0, 0)
        var k0 = UInt32(truncatingIfNeeded: seed), k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c[0])
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c[2])
            c = SIMD4(UInt32(truncatingIfNeeded: p1 >> 32) ^ c[1] ^ k0, UInt32(truncatingIfNeeded: p1),
                      UInt32(truncatingIfNeeded: p0 >> 32) ^ c[3] ^ k1, UInt32(truncatingIfNeeded: p0))
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return c
    }

    /// Uniform in (0, 1] from 24 random bits (never 0, so log is safe).
    @inlinable @inline(__always)
    public static func unit(_ bits: UInt32) -> Float {
        Float((bits >> 8) + 1) * (1.0 / 16_777_216.0)
    }

    /// Value `index` of the stream (seed, offset) for a distribution.
    @inlinable
    public static func sample(_ d: RandomDistribution, seed: UInt64, offset: UInt64, index: Int) -> Float {
        let i = offset &+ UInt64(index)
        switch d {
        case let .uniform(low, high):
            let b = block(counter: i / 4, seed: seed)
            return low + (high - low) * (1 - unit(b[Int(i % 4)]))
        case let .bernoulli(p):
            let b = block(counter: i / 4, seed: seed)
            return unit(b[Int(i % 4)]) <= p ? 1 : 0
        case let .normal(mean, std):
            return mean + std * standardNormal(i, seed: seed)
        case let .truncatedNormal(mean, std, low, high):
            // Inverse CDF: x = Φ⁻¹(Φ(a) + u·(Φ(b) − Φ(a))), a and b in standard units.
            let b = block(counter: i / 4, seed: seed)
            let u = Double(unit(b[Int(i % 4)]))
            let a = Double((low - mean) / std), bb = Double((high - mean) / std)
            let ca = 0.5 * (1 + erf(a / 2.0.squareRoot())), cb = 0.5 * (1 + erf(bb / 2.0.squareRoot()))
            let p = min(max(ca + u * (cb - ca), 1e-12), 1 - 1e-12)
            let z = 2.0.squareRoot() * inverseErf(2 * p - 1)
            return Float(min(max(Double(mean) + Double(std) * z, Double(low)), Double(high)))
        }
    }

    /// Box–Muller on the pair of words that belongs to element i.
    @inlinable @inline(__always)
    public static func standardNormal(_ i: UInt64, seed: UInt64) -> Float {
        let b = block(counter: i / 2, seed: seed)
        let lane = Int(i % 2) * 2
        let u1 = unit(b[lane]), u2 = unit(b[lane + 1])
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Float.pi * u2)
    }

    /// erf⁻¹ by Giles' approximation refined with two Newton steps (double precision).
    @inlinable
    public static func inverseErf(_ y: Double) -> Double {
        var w = -Foundation.log((1 - y) * (1 + y)), x: Double
        if w < 6.25 {
            w -= 3.125
            var p = -3.6444120640178196996e-21
            for c in [-1.685059138182016589e-19, 1.2858480715256400167e-18, 1.115787767802518096e-17, -1.333171662854620906e-16,
                      2.0972767875968561637e-17, 6.6376381343583238325e-15, -4.0545662729752068639e-14, -8.1519341976054721522e-14,
                      2.6335093153082322977e-12, -1.2975133253453532498e-11, -5.4154120542946279317e-11, 1.051212273321532285e-09,
                      -4.1126339803469836976e-09, -2.9070369957882005086e-08, 4.2347877827932403518e-07, -1.3654692000834678645e-06,
                      -1.3882523362786468719e-05, 0.0001867342080340571352, -0.00074070253416626697512, -0.0060336708714301490533,
                      0.24015818242558961693, 1.6536545626831027356] { p = c + p * w }
            x = p * y
        } else {
            // Tails (|y| > 0.998): bisection, robust where erf is flat.
            var lo = 0.0, hi = 6.0
            for _ in 0..<60 { let mid = (lo + hi) / 2; if erf(mid) < abs(y) { lo = mid } else { hi = mid } }
            return y < 0 ? -(lo + hi) / 2 : (lo + hi) / 2
        }
        for _ in 0..<2 {
            let err = erf(x) - y
            x -= err / (2 / Double.pi.squareRoot() * Foundation.exp(-x * x))
        }
        return x
    }
}
