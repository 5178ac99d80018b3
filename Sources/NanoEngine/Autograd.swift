/// One recorded op: where its inputs came from and the function that maps the output's gradient
/// to theirs. A node does not hold its inputs' tensors, only their producers (or, for leaves,
/// the leaf): an intermediate whose values no backward function saved (a residual add's inputs)
/// is freed as soon as the forward code drops it, as in PyTorch's autograd graph.
final class Node {
    let op: String
    var inputs: [Edge]
    /// Returns one gradient per input (nil where the input needs none).
    var backward: ((Tensor) throws -> [Tensor?])?

    init(op: String, inputs: [Edge], backward: @escaping (Tensor) throws -> [Tensor?]) {
        self.op = op
        self.inputs = inputs
        self.backward = backward
    }
}

/// Where an op's input came from: another op, a leaf that wants a gradient, or nothing to follow.
enum Edge {
    case node(Node)
    case leaf(Tensor)
    case none

    init(_ t: Tensor) {
        if let n = t.node, n.backward != nil { self = .node(n) } else if t.requiresGrad { self = .leaf(t) } else { self = .none }
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
        output.node = Node(op: op, inputs: inputs.map(Edge.init), backward: backward)
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
        guard let root = node else {   // a leaf: its gradient is the seed
            try accumulateGrad(seed)
            try onGradientReady?(self)
            return
        }
        try withNoGrad {
            // Each node is let go of as soon as its backward has run: every op that used its output
            // ran earlier in this reverse order, so nothing left needs what it saved, and those
            // intermediates go back to the allocator while backward goes on.
            var order: [Node?] = Self.topologicalOrder(from: root)
            func release(_ n: Node) { n.backward = nil; n.inputs = [] }
            defer { for case let n? in order { release(n) }; node = nil }
            var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
            func add(_ g: Tensor, to key: ObjectIdentifier) throws {
                grads[key] = try grads[key].map { try $0.adding(g) } ?? g
            }
            // Leaves get their gradient once no remaining node feeds them: count their uses.
            var leafUses: [ObjectIdentifier: Int] = [:]
            for case let n? in order { for case .leaf(let t) in n.inputs { leafUses[ObjectIdentifier(t), default: 0] += 1 } }
            for index in order.indices.reversed() {
                guard let node = order[index] else { continue }
                order[index] = nil
                defer { release(node) }
                // A node no gradient reached still counts as having used its leaves.
                var inputGrads: [Tensor?] = []
                if let g = grads.removeValue(forKey: ObjectIdentifier(node)), let fn = node.backward { inputGrads = try fn(g) }
                for (i, input) in node.inputs.enumerated() {
                    let ig = i < inputGrads.count ? inputGrads[i] : nil
                    switch input {
                    case .node(let n):
                        if let ig { try add(ig, to: ObjectIdentifier(n)) }
                    case .leaf(let t):
                        let key = ObjectIdentifier(t)
                        if let ig { try add(ig, to: key) }
                        leafUses[key, default: 1] -= 1
                        if leafUses[key] == 0, let total = grads.removeValue(forKey: key) {
                            try t.accumulateGrad(total)
                            try onGradientReady?(t)
                        }
                    case .none:
                        continue
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

    /// Nodes reachable from root, each after the nodes that produced its inputs.
    private static func topologicalOrder(from root: Node) -> [Node?] {
        var order: [Node?] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Node, Bool)] = [(root, false)]
        while let (n, expanded) = stack.popLast() {
            if expanded { order.append(n); continue }
            if visited.contains(ObjectIdentifier(n)) { continue }
            visited.insert(ObjectIdentifier(n))
            stack.append((n, true))
            for case .node(let input) in n.inputs where !visited.contains(ObjectIdentifier(input)) {
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
