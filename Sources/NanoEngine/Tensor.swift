/// An n-dimensional array on a device, with reverse-mode autograd.
///
/// Tensors are reference types, like PyTorch's: ops return new tensors, gradients accumulate
/// into `grad`. Storage is contiguous row-major; `reshaped` and `slice(rows:)` are views.
public final class Tensor {
    public let shape: [Int]
    public let dtype: DType
    public let storage: Storage
    /// Offset into `storage`, in elements.
    public let offset: Int
    /// Whether gradients flow to this tensor. Set it on leaves (parameters); ops propagate it.
    public var requiresGrad: Bool
    /// Marks a model parameter (set by NanoNN's `parameter`). A frozen parameter keeps this flag
    /// with `requiresGrad` false: it is saved and loaded but gets no gradient.
    public var isParameter = false
    /// Accumulated gradient of a leaf after `backward()`.
    public var grad: Tensor?
    /// The op that produced this tensor, while a graph is recorded.
    var node: Node?
    /// The backend of the tensor's device, resolved once.
    let backend: any Backend

    init(shape: [Int], dtype: DType, storage: Storage, offset: Int = 0, backend: any Backend) {
        self.shape = shape
        self.dtype = dtype
        self.storage = storage
        self.offset = offset
        self.requiresGrad = false
        self.backend = backend
    }

    public var device: Device { storage.device }
    public var count: Int { Shape.count(shape) }
    public var rank: Int { shape.count }
    /// Address of the first element (host pointer on the CPU).
    public var rawPointer: UnsafeMutableRawPointer { storage.pointer + offset * dtype.size }
    /// True when produced by an op on a recorded graph.
    public var hasGraph: Bool { node?.backward != nil }
    /// True for tensors created by the user (not by a recorded op).
    public var isLeaf: Bool { !hasGraph }

    /// Typed pointer to the elements. Only meaningful on the CPU.
    public func pointer<T>(as type: T.Type) -> UnsafeMutablePointer<T> {
        rawPointer.assumingMemoryBound(to: type)
    }

    // MARK: Creation

    /// Uninitialised tensor.
    public static func empty(_ shape: [Int], dtype: DType = .float32, device: Device = .current) throws -> Tensor {
        if let bad = shape.first(where: { $0 < 0 }) {
            throw TensorError.invalidArgument(op: "empty", message: "negative dimension \(bad) in shape \(shape)")
        }
        let backend = try device.backend
        let storage = try backend.allocate(byteCount: Swift.max(Shape.count(shape) * dtype.size, 1))
        return Tensor(shape: shape, dtype: dtype, storage: storage, backend: backend)
    }

    public static func full(_ shape: [Int], value: Float, dtype: DType = .float32, device: Device = .current) throws -> Tensor {
        let t = try empty(shape, dtype: dtype, device: device)
        t.backend.fill(t, value: value)
        return t
    }

    public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .current) throws -> Tensor {
        try full(shape, value: 0, dtype: dtype, device: device)
    }

    public static func ones(_ shape: [Int], dtype: DType = .float32, device: Device = .current) throws -> Tensor {
        try full(shape, value: 1, dtype: dtype, device: device)
    }

    /// A float32 tensor holding `values`.
    public convenience init(_ values: [Float], shape: [Int], device: Device = .current) throws {
        guard Shape.count(shape) == values.count else {
            throw TensorError.shapeMismatch(op: "Tensor(values:shape:)", shapes: [[values.count], shape],
                                            expected: "as many values as the shape holds (\(Shape.count(shape)))")
        }
        let t = try Tensor.empty(shape, dtype: .float32, device: device)
        self.init(shape: shape, dtype: .float32, storage: t.storage, backend: t.backend)
        values.withUnsafeBytes { backend.write($0, to: self) }
    }

    /// An int32 tensor (indices, tokens, targets).
    public convenience init(indices: [Int32], shape: [Int], device: Device = .current) throws {
        guard Shape.count(shape) == indices.count else {
            throw TensorError.shapeMismatch(op: "Tensor(indices:shape:)", shapes: [[indices.count], shape],
                                            expected: "as many indices as the shape holds (\(Shape.count(shape)))")
        }
        let t = try Tensor.empty(shape, dtype: .int32, device: device)
        self.init(shape: shape, dtype: .int32, storage: t.storage, backend: t.backend)
        indices.withUnsafeBytes { backend.write($0, to: self) }
    }

    /// A float32 scalar.
    public convenience init(scalar: Float, device: Device = .current) throws {
        try self.init([scalar], shape: [], device: device)
    }

    /// Random tensor from `distribution`, drawing from `generator` (the default generator when nil).
    public static func random(_ shape: [Int], _ distribution: RandomDistribution, generator: Generator? = nil,
                              device: Device = .current) throws -> Tensor {
        let t = try empty(shape, dtype: .float32, device: device)
        let gen = generator ?? Generator.default
        let offset = gen.reserve(count: t.count)
        t.backend.random(t, distribution, seed: gen.seed, offset: offset)
        return t
    }

    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1, generator: Generator? = nil,
                             device: Device = .current) throws -> Tensor {
        try random(shape, .normal(mean: mean, std: std), generator: generator, device: device)
    }

    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, generator: Generator? = nil,
                               device: Device = .current) throws -> Tensor {
        try random(shape, .uniform(low: low, high: high), generator: generator, device: device)
    }

    // MARK: Reading back

    /// Elements converted to Float (any dtype).
    public func toArray() throws -> [Float] {
        if dtype == .float32 { return readRaw(self, as: Float.self) }
        let f = try withNoGrad { try cast(to: .float32) }
        return readRaw(f, as: Float.self)
    }

    /// The elements' bytes as stored (any dtype, any device), copied to the host.
    public func bytes() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count * dtype.size) { buf, n in
            backend.read(self, into: UnsafeMutableRawBufferPointer(buf))
            n = count * dtype.size
        }
    }

    /// Elements of an int32 tensor.
    public func toInt32Array() throws -> [Int32] {
        guard dtype == .int32 else { throw TensorError.dtypeMismatch(op: "toInt32Array", got: dtype, expected: "int32") }
        return readRaw(self, as: Int32.self)
    }

    /// The single value of a one-element tensor.
    public func item() throws -> Float {
        guard count == 1 else {
            throw TensorError.shapeMismatch(op: "item", shapes: [shape], expected: "exactly one element")
        }
        return try toArray()[0]
    }

    private func readRaw<T>(_ t: Tensor, as: T.Type) -> [T] {
        [T](unsafeUninitializedCapacity: t.count) { buf, n in
            t.backend.read(t, into: UnsafeMutableRawBufferPointer(buf))
            n = t.count
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        "Tensor(shape: \(shape), dtype: \(dtype), device: \(device)\(requiresGrad ? ", requiresGrad" : ""))"
    }
}
