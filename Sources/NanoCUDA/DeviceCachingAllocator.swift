import Foundation
import NanoEngine

/// Device memory with reuse, as PyTorch's CUDA caching allocator does: a freed block goes to a
/// free list keyed by its rounded size instead of back to the driver, so a training loop that
/// repeats its shapes stops calling `cuMemAlloc` (which synchronizes the device) after the first
/// step. Every kernel runs on one stream, so a block freed by the host can be handed out again at
/// once: the kernels that used it run before any kernel launched later.
///
/// When the driver is out of memory, the cached blocks are given back and the allocation is tried
/// once more; if it still fails, the error says how much is live and how much was cached.
/// While a CUDA graph is recorded, allocations come from a private pool (`beginPool`): blocks
/// freed during the recording are reused within it, but no block of the pool is handed to anyone
/// else until the graph is gone (`releasePool`), because every replay writes them again.
///
/// The raw allocation functions are parameters, so the bookkeeping is tested without a GPU.
public final class DeviceCachingAllocator: StorageAllocator, @unchecked Sendable {
    public typealias Address = UInt64
    private let systemAllocate: (Int) throws -> Address
    private let systemFree: (Address) -> Void
    /// Waits for the device's queued work, before cached blocks go back to the driver.
    private let synchronize: () -> Void
    private var free: [Int: [Address]] = [:]
    private let lock = NSLock()
    public let deviceName: String
    /// Bytes obtained from the driver and not returned (in use + cached).
    public private(set) var reservedBytes = 0
    /// Bytes held by live tensors (rounded sizes).
    public private(set) var liveBytes = 0
    public private(set) var peakLiveBytes = 0, peakReservedBytes = 0
    /// Driver allocations made so far, and times the cache was emptied to retry one.
    public private(set) var systemAllocations = 0, cacheFlushes = 0

    public init(deviceName: String, allocate: @escaping (Int) throws -> Address, free: @escaping (Address) -> Void,
                synchronize: @escaping () -> Void = {}) {
        self.deviceName = deviceName
        self.synchronize = synchronize
        systemAllocate = allocate
        systemFree = free
    }

    /// Rounds up to 512 B below 1 MiB, else to 1/8 of the next power of two (under 25% waste), so
    /// nearby sizes share a free list.
    public static func bucket(_ bytes: Int) -> Int {
        let bytes = max(bytes, 1)
        if bytes <= 1 << 20 { return (bytes + 511) & ~511 }
        let p = Int.bitWidth - (bytes - 1).leadingZeroBitCount
        let step = 1 << (p - 3)
        return (bytes + step - 1) / step * step
    }

    /// A block of at least `bytes`.
    public func allocate(_ bytes: Int) throws -> Address {
        let size = Self.bucket(bytes)
        lock.lock()
        if let pool = recordingPool, var list = poolFree[pool]?[size], let p = list.popLast() {
            poolFree[pool]![size] = list
            note(live: size)
            lock.unlock()
            return p
        }
        if var list = free[size], let p = list.popLast() {
            free[size] = list
            note(live: size)
            if let pool = recordingPool { owner[p] = pool }
            lock.unlock()
            return p
        }
        let recording = recordingPool != nil
        lock.unlock()
        let p: Address
        do {
            p = try systemAllocate(size)
        } catch where recording {
            // While a graph is recorded the device must not be synchronized (it would invalidate
            // the capture) nor cached blocks freed: out of memory is reported as it is.
            throw TensorError.invalidArgument(op: "allocate", message: String(
                format: "%@ is out of memory allocating %.1f MB while recording a CUDA graph (%.1f MB held by live tensors): %@",
                deviceName, Double(size) / 1e6, Double(liveBytes) / 1e6, "\(error)"))
        } catch {
            // Out of memory (or fragmented): give the cache back to the driver and try once more.
            let returned = emptyCache()
            lock.lock(); cacheFlushes += 1; lock.unlock()
            do {
                p = try systemAllocate(size)
            } catch let retry {
                throw TensorError.invalidArgument(op: "allocate", message: String(
                    format: "%@ is out of memory allocating %.1f MB (%.1f MB held by live tensors; %.1f MB of cached blocks were given back first): %@",
                    deviceName, Double(size) / 1e6, Double(liveBytes) / 1e6, Double(returned) / 1e6, "\(retry)"))
            }
        }
        lock.lock()
        systemAllocations += 1
        reservedBytes += size
        sizes[p] = size
        peakReservedBytes = max(peakReservedBytes, reservedBytes)
        note(live: size)
        if let pool = recordingPool { owner[p] = pool }
        lock.unlock()
        return p
    }

    /// Rounded size of every block obtained from the driver, so emptying the cache can count it.
    private var sizes: [Address: Int] = [:]

    private func note(live size: Int) {
        liveBytes += size
        peakLiveBytes = max(peakLiveBytes, liveBytes)
    }

    public func release(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        release(Address(UInt(bitPattern: pointer)), byteCount: byteCount)
    }

    public func release(_ address: Address, byteCount: Int) {
        let size = Self.bucket(byteCount)
        lock.lock(); defer { lock.unlock() }
        liveBytes -= size
        if let pool = owner[address] {
            poolFree[pool, default: [:]][size, default: []].append(address)
        } else {
            free[size, default: []].append(address)
        }
    }

    // MARK: Graph pools

    /// The pool new allocations join, while a graph is recorded.
    private var recordingPool: Int? = nil
    private var nextPool = 1
    /// Blocks that belong to a pool (live or free), by address.
    private var owner: [Address: Int] = [:]
    /// Freed blocks of each pool, by rounded size: only that pool's recording reuses them.
    private var poolFree: [Int: [Int: [Address]]] = [:]

    /// Starts a pool: until `endPool`, every block handed out belongs to it. Returns its id.
    public func beginPool() -> Int {
        lock.lock(); defer { lock.unlock() }
        let id = nextPool
        nextPool += 1
        recordingPool = id
        poolFree[id] = [:]
        return id
    }

    /// Ends the recording: later allocations come from the shared cache again; the pool's blocks stay reserved.
    public func endPool() {
        lock.lock(); defer { lock.unlock() }
        recordingPool = nil
    }

    /// Gives pool `id`'s blocks back to the shared cache: the free ones now, the live ones when
    /// their tensors release them.
    public func releasePool(_ id: Int) {
        lock.lock(); defer { lock.unlock() }
        if recordingPool == id { recordingPool = nil }
        for (size, blocks) in poolFree[id] ?? [:] { free[size, default: []] += blocks }
        poolFree[id] = nil
        owner = owner.filter { $0.value != id }
    }

    /// Bytes of pool `id`'s blocks that are free but reserved for its graph.
    public func reservedFreeBytes(pool id: Int) -> Int {
        lock.lock(); defer { lock.unlock() }
        return (poolFree[id] ?? [:]).reduce(0) { $0 + $1.key * $1.value.count }
    }

    /// Gives every cached block back to the driver; returns the bytes returned.
    @discardableResult
    public func emptyCache() -> Int {
        lock.lock()
        let cached = free.values.flatMap { $0 }
        free = [:]
        let bytes = cached.reduce(0) { $0 + (sizes[$1] ?? 0) }
        reservedBytes -= bytes
        for block in cached { sizes[block] = nil }
        lock.unlock()
        // Kernels queued before the host released these blocks may still use them.
        if !cached.isEmpty { synchronize() }
        for block in cached { systemFree(block) }
        return bytes
    }
}
