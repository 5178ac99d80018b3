import CKernelMath
import Foundation
import NanoEngine

// Optimizer kernels. p, g, m, v: (n) float32, updated in place.

/// AdamW: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + ε)
/// with m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ) (Loshchilov & Hutter 2019, Algorithm 2).
func adamWKernel(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                 _ v: UnsafeMutablePointer<Float>, _ n: Int, _ h: AdamWStep) {
    let c1 = 1 - Foundation.pow(h.beta1, Float(h.step)), c2 = 1 - Foundation.pow(h.beta2, Float(h.step))
    let b1 = F16x(repeating: h.beta1), b2 = F16x(repeating: h.beta2)
    let ob1 = F16x(repeating: 1 - h.beta1), ob2 = F16x(repeating: 1 - h.beta2)
    let stepSize = F16x(repeating: h.learningRate / c1), invC2 = F16x(repeating: 1 / c2)
    let decay = F16x(repeating: 1 - h.learningRate * h.weightDecay), eps = F16x(repeating: h.eps)
    Parallel.forRange((n + 15) / 16, costPerItem: 64) { r in
        var i = r.lowerBound * 16
        let end = min(r.upperBound * 16, n)
        func update(_ pv: F16x, _ gv: F16x, _ mv: F16x, _ vv: F16x) -> (F16x, F16x, F16x) {
            let m2 = (b1 * mv).addingProduct(ob1, gv)
            let v2 = (b2 * vv).addingProduct(ob2 * gv, gv)
            let p2 = pv * decay - stepSize * m2 / (nd_sqrt(v2 * invC2) + eps)
            return (p2, m2, v2)
        }
        while i + 16 <= end {
            let (p2, m2, v2) = update(load16(p + i), load16(g + i), load16(m + i), load16(v + i))
            store16(p2, p + i); store16(m2, m + i); store16(v2, v + i)
            i += 16
        }
        if i < end {
            let k = end - i
            let (p2, m2, v2) = update(loadPartial(p + i, k), loadPartial(g + i, k), loadPartial(m + i, k), loadPartial(v + i, k))
            storePartial(p2, p + i, k); storePartial(m2, m + i, k); storePartial(v2, v + i, k)
        }
    }
}

func sumOfSquaresKernel(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0
    var i = 0
    while i < n {   // blocks of 4096 summed in float, blocks summed in double
        let k = min(4096, n - i)
        total += Double(dot16(x + i, x + i, k))
        i += k
    }
    return total
}
