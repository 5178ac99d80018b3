import NanoCPU
import NanoEngine
import Testing

/// Finite-difference gradient check in float32.
///
/// loss = Σ f(inputs) ⊙ R with a fixed random R; each checked element of each input is
/// perturbed by ±eps and the central difference compared with the analytic gradient:
/// |analytic − numeric| ≤ atol + rtol·|numeric|. float32 limits the accuracy of the
/// difference to about 1e-4 relative, hence the default tolerances.
public func gradCheck(_ name: String, _ inputs: [Tensor], eps: Float = 1e-2, atol: Float = 2e-3, rtol: Float = 1e-2,
               maxElements: Int = 48, sourceLocation: SourceLocation = #_sourceLocation,
               _ f: ([Tensor]) throws -> Tensor) throws {
    for x in inputs where x.dtype == .float32 { x.requiresGrad = true; x.grad = nil }
    let out = try f(inputs)
    let r = try Tensor.randn(out.shape, generator: Generator(seed: 99))
    let loss = try (out * r).sum()
    try loss.backward()
    #expect(!out.hasGraph, "\(name): graph should be released after backward", sourceLocation: sourceLocation)

    func evaluate() throws -> Double {
        try withNoGrad { Double(try (try f(inputs) * r).sum().item()) }
    }
    for (which, x) in inputs.enumerated() where x.requiresGrad {
        let analytic = try #require(x.grad, "\(name): input \(which) got no gradient", sourceLocation: sourceLocation).toArray()
        let p = x.pointer(as: Float.self)
        let step = max(1, x.count / maxElements)
        var worst: (index: Int, analytic: Float, numeric: Float)? = nil
        for i in stride(from: 0, to: x.count, by: step) {
            let saved = p[i]
            p[i] = saved + eps
            let plus = try evaluate()
            p[i] = saved - eps
            let minus = try evaluate()
            p[i] = saved
            let numeric = Float((plus - minus) / Double(2 * eps))
            if abs(analytic[i] - numeric) > atol + rtol * abs(numeric) {
                if worst == nil || abs(analytic[i] - numeric) > abs(worst!.analytic - worst!.numeric) {
                    worst = (i, analytic[i], numeric)
                }
            }
        }
        #expect(worst == nil, "\(name): input \(which) element \(worst?.index ?? -1): analytic \(worst?.analytic ?? 0) vs numeric \(worst?.numeric ?? 0)",
                sourceLocation: sourceLocation)
    }
}

/// A float32 tensor of normal values (seeded).
public func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, shift: Float = 0) throws -> Tensor {
    try Tensor.randn(shape, mean: shift, std: scale, generator: Generator(seed: seed))
}
