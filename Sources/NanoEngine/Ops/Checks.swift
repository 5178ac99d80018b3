// Validation shared by ops: every op checks dtypes, devices and shapes before any kernel runs.

extension Tensor {
    func requireFloat32(_ op: String) throws {
        guard dtype == .float32 else {
            throw TensorError.dtypeMismatch(op: op, got: dtype, expected: "float32 (cast with .cast(to: .float32))")
        }
    }

    func requireInt32(_ op: String, role: String = "indices") throws {
        guard dtype == .int32 else { throw TensorError.dtypeMismatch(op: op, got: dtype, expected: "int32 \(role)") }
    }

    static func requireSameDevice(_ op: String, _ tensors: [Tensor]) throws {
        guard let first = tensors.first?.device, tensors.allSatisfy({ $0.device == first }) else {
            throw TensorError.deviceMismatch(op: op, devices: tensors.map(\.device))
        }
    }

    /// Normalised axis or a clear error.
    func axisIndex(_ axis: Int, op: String) throws -> Int {
        guard let a = Shape.normalize(axis: axis, rank: rank), rank > 0 else {
            throw TensorError.invalidArgument(op: op, message: "axis \(axis) is out of range for a tensor of shape \(shape)")
        }
        return a
    }

    /// Checks every index lies in [0, bound) before a kernel dereferences it.
    func requireIndices(in bound: Int, op: String) throws {
        guard count > 0 else { return }
        let (lo, hi) = backend.indexRange(self)
        if lo < 0 { throw TensorError.indexOutOfRange(op: op, index: Int(lo), bound: bound) }
        if Int(hi) >= bound { throw TensorError.indexOutOfRange(op: op, index: Int(hi), bound: bound) }
    }

    /// A new float32 tensor of `shape` on this tensor's device.
    func emptyLike(_ shape: [Int], dtype: DType = .float32) throws -> Tensor {
        try Tensor.empty(shape, dtype: dtype, device: device)
    }
}
