/// Returns memory blocks to whoever handed them out (a caching allocator).
public protocol StorageAllocator: AnyObject, Sendable {
    func release(_ pointer: UnsafeMutableRawPointer, byteCount: Int)
}

/// A block of memory on a device. Tensors view it through a shape and an element offset.
public final class Storage: @unchecked Sendable {
    /// Host pointer on the CPU; a device address on accelerators.
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    public let device: Device
    private let allocator: (any StorageAllocator)?

    public init(pointer: UnsafeMutableRawPointer, byteCount: Int, device: Device, allocator: (any StorageAllocator)?) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.device = device
        self.allocator = allocator
    }

    deinit { allocator?.release(pointer, byteCount: byteCount) }
}
