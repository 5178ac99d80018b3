import Foundation

/// Host-to-device copies that return at once: the bytes are copied into page-locked (pinned)
/// host memory, from which the GPU's copy engine reads them in stream order
/// (`cuMemcpyHtoDAsync`). A copy from ordinary (pageable) memory would block the host until
/// the GPU had finished everything enqueued before it, so the host could not enqueue the next
/// step's work while the current one runs; this is how each step's batch reaches the GPU.
///
/// The pinned memory is two halves used in turn: copies take consecutive slices of the current
/// half; when it is full an event marks its last copy and the other half is reused once that
/// half's own last copy is done (normally long before). Copies larger than a half are left to
/// the caller (`upload` returns false).
final class PinnedStaging {
    private typealias HostAlloc = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> Int32
    private typealias FreeHost = @convention(c) (UnsafeMutableRawPointer?) -> Int32
    private typealias CopyInAsync = @convention(c) (CUDAContext.DevicePointer, UnsafeRawPointer, Int, OpaquePointer?) -> Int32
    private typealias EventCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Int32
    private typealias EventCall = @convention(c) (OpaquePointer?) -> Int32
    private typealias EventRecord = @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32

    /// Bytes per half.
    let halfBytes: Int
    private let context: CUDAContext
    private let freeHost: FreeHost, copyInAsync: CopyInAsync, record: EventRecord, synchronizeEvent: EventCall, destroyEvent: EventCall
    private var halves: [(base: UnsafeMutableRawPointer, lastCopy: OpaquePointer?)] = []
    private var current = 0, used = 0

    /// Two halves of `halfBytes` pinned bytes on `context`'s device.
    init(context: CUDAContext, halfBytes: Int = 16 << 20, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.context = context
        self.halfBytes = halfBytes
        let sym = try CUDALibraryLoader.driver(environment: environment)
        let hostAlloc = try sym("cuMemHostAlloc", HostAlloc.self)
        let createEvent = try sym("cuEventCreate", EventCreate.self)
        freeHost = try sym("cuMemFreeHost", FreeHost.self)
        copyInAsync = try sym("cuMemcpyHtoDAsync_v2", CopyInAsync.self)
        record = try sym("cuEventRecord", EventRecord.self)
        synchronizeEvent = try sym("cuEventSynchronize", EventCall.self)
        destroyEvent = try sym("cuEventDestroy_v2", EventCall.self)
        try context.makeCurrent()
        do {
            for _ in 0..<2 {
                var base: UnsafeMutableRawPointer? = nil, event: OpaquePointer? = nil
                try context.check("cuMemHostAlloc(\(halfBytes) bytes)", hostAlloc(&base, halfBytes, 0))
                halves.append((base!, nil))
                try context.check("cuEventCreate", createEvent(&event, 2))   // CU_EVENT_DISABLE_TIMING
                halves[halves.count - 1].lastCopy = event
            }
        } catch {
            release()
            throw error
        }
    }

    deinit { release() }

    private func release() {
        try? context.makeCurrent()
        for half in halves {
            if let event = half.lastCopy { _ = synchronizeEvent(event); _ = destroyEvent(event) }
        }
        _ = try? context.synchronize()   // copies still reading the last slices
        for half in halves { _ = freeHost(half.base) }
        halves = []
    }

    /// Enqueues a copy of `bytes` to device memory `p` on `stream` and returns without waiting
    /// for it; false (nothing done) when the bytes are larger than a half.
    func upload(_ bytes: UnsafeRawBufferPointer, to p: CUDAContext.DevicePointer, stream: OpaquePointer?) throws -> Bool {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return true }
        guard bytes.count <= halfBytes else { return false }
        try context.makeCurrent()
        let slice = (bytes.count + 255) / 256 * 256
        if used + slice > halfBytes {
            // This half is full: mark its last copy, then take the other half once its last copy is done.
            try context.check("cuEventRecord", record(halves[current].lastCopy, stream))
            current ^= 1
            used = 0
            try context.check("cuEventSynchronize", synchronizeEvent(halves[current].lastCopy))
        }
        let staged = halves[current].base + used
        staged.copyMemory(from: source, byteCount: bytes.count)
        try context.check("cuMemcpyHtoDAsync(\(bytes.count) bytes)", copyInAsync(p, staged, bytes.count, stream))
        used += slice
        return true
    }
}
