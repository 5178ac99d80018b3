// Inverted dropout (Srivastava et al. 2014): keep with probability 1 − p, scale by 1/(1 − p).

extension Tensor {
    /// Zeroes each element with probability p while training; identity when p = 0 or not training.
    public func dropout(_ p: Float, training: Bool = true, generator: Generator? = nil) throws -> Tensor {
        guard (0..<1).contains(p) else { throw TensorError.invalidArgument(op: "dropout", message: "p = \(p) must be in [0, 1)") }
        guard training, p > 0 else { return self }
        let mask = try Tensor.random(shape, .bernoulli(p: 1 - p), generator: generator, device: device)
        let scaledMask = try withNoGrad { try mask.scaled(by: 1 / (1 - p)) }
        return try self * scaledMask
    }
}
