/// One recorded op: its inputs and the function that maps the output's gradient to theirs.
final class Node {
    let op: String
    var inputs: [Tensor]
    /// Returns one gradient per input (nil where the input needs none).
    var backward: ((Tensor) throws -> [Tensor?])?

    init(op: String, inputs: [Tensor], backward: @escaping (Tensor) throws -> [Tensor?]) {
        self.op = op
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether ops record a graph. Use `withNoGrad` for inference and optimizer updates.
public enum GradMode {
    @TaskLocal static var enabled = true

    public static var isEnabled: Bool { enabled }
}

/// Runs `body` without recording any graph.
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$enabled.withValue(false) { try body() }
}

extension Tensor {
    /// Attaches a backward function to `output` when grad mode is on and an input requires grad.
    /// The closure receives the output's gradient and returns one gradient per input.
    public static func record(_ op: String, output: Tensor, inputs: [Tensor],
                              backward: @escaping (Tensor) throws -> [Tensor?]) -> Tensor {
        guard GradMode.enabled, inputs.contains(where: \.requiresGrad) else { return output }
        output.requiresGrad = true
        output.node = Node(op: op, inputs: inputs, backward: backward)
        return output
    }

    /// Reverse-mode differentiation from this tensor. Without `gradient` the tensor must be a
    /// scalar (seed 1). Gradients accumulate into `grad` of every leaf that requires grad; the
    /// graph and its saved intermediates are released afterwards.
    ///
    /// `onGradientReady` is called for each leaf as soon as its gradient for this pass is complete
    /// (every op that used it has run its backward), while the rest of backward still runs: data
    /// parallelism starts reducing those gradients early.
    public func backward(gradient: Tensor? = nil, onGradientReady: ((Tensor) throws -> Void)? = nil) throws {
        guard requiresGrad else {
            throw TensorError.noGraph(message: "the tensor \(shape) does not require grad: no op that produced it had an input with requiresGrad = true (or it was made under withNoGrad)")
        }
        let seed: Tensor
        if let gradient {
            guard gradient.shape == shape else {
                throw TensorError.shapeMismatch(op: "backward", shapes: [shape, gradient.shape], expected: "a gradient of the output's shape")
            }
            seed = gradient
        } else {
            guard count == 1 else {
                throw TensorError.shapeMismatch(op: "backward", shapes: [shape], expected: "a scalar output, or pass gradient:")
            }
            seed = try Tensor.ones(shape, device: device)
        }
        try withNoGrad {
            // Each tensor is let go of as soon as its backward has run: every op that used it ran
            // earlier in this reverse order, so nothing left needs it, and its saved intermediates
            // go back to the allocator while backward goes on (peak memory ≈ forward's, not 2×).
            var order: [Tensor?] = topologicalOrder()
            func release(_ t: Tensor) { t.node?.backward = nil; t.node?.inputs = []; t.node = nil }
            defer { for case let t? in order { release(t) } }
            var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
            for index in order.indices.reversed() {
                guard let t = order[index] else { continue }
                order[index] = nil
                defer { release(t) }
                guard let g = grads.removeValue(forKey: ObjectIdentifier(t)) else { continue }
                guard let node = t.node else {
                    // Reverse topological order: every user of this leaf has already contributed.
                    try t.accumulateGrad(g)
                    try onGradientReady?(t)
                    continue
                }
                guard let fn = node.backward else { continue }
                let inputGrads = try fn(g)
                for (input, ig) in zip(node.inputs, inputGrads) {
                    guard let ig, input.requiresGrad else { continue }
                    let key = ObjectIdentifier(input)
                    if let existing = grads[key] {
                        grads[key] = try existing.adding(ig)
                    } else {
                        grads[key] = ig
                    }
                }
            }
        }
    }

    /// Adds g into `grad` (in place once it exists).
    func accumulateGrad(_ g: Tensor) throws {
        if let existing = grad {
            backend.binary(.add, existing, g, existing)
        } else {
            let copy = try Tensor.empty(shape, dtype: g.dtype, device: device)
            backend.copy(g, to: copy)
            grad = copy
        }
    }

    /// Tensors reachable from self, inputs before the ops that use them.
    private func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            if visited.contains(ObjectIdentifier(t)) { continue }
            visited.insert(ObjectIdentifier(t))
            stack.append((t, true))
            for input in t.node?.inputs ?? [] where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        return order
    }

    /// Sets `grad` to nil.
    public func zeroGrad() { grad = nil }

    /// A tensor sharing this one's storage, outside any graph.
    public func detached() -> Tensor {
        Tensor(shape: shape, dtype: dtype, storage: storage, offset: offset, backend: backend)
    }
}
