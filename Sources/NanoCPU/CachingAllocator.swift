import Foundation
import NanoEngine

/// Host memory with reuse: freed blocks go to a free list keyed by their rounded size, so a
/// training loop that repeats the same shapes stops asking the system for memory after step 1.
public final class CachingAllocator: StorageAllocator, @unchecked Sendable {
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private let lock = NSLock()
    /// Bytes obtained from the system and not returned (in use + cached).
    public private(set) var reservedBytes = 0
    /// Bytes held by live tensors.
    public private(set) var liveBytes = 0
    /// The most bytes live tensors held at once; what a perfect allocator would need.
    public private(set) var peakLiveBytes = 0
    /// Starts a new peak from what is live now (to measure one stretch of work).
    public func resetPeak() {
        lock.lock(); defer { lock.unlock() }
        peakLiveBytes = liveBytes
    }
    /// The most bytes obtained from the system at once.
    public private(set) var peakReservedBytes = 0
    /// Number of system allocations made so far.
    public private(set) var systemAllocations = 0
    private let caching: Bool
    /// Blocks a recorded kernel tape uses (see `pin`), and those of them their tensors released.
    private var pinned: Set<UnsafeMutableRawPointer> = []
    private var held: [UnsafeMutableRawPointer: Int] = [:]

    public init(caching: Bool = ProcessInfo.processInfo.environment["NANODECODER_NO_CACHE"] == nil) {
        self.caching = caching
    }

    /// Rounds up to 256 B below 1 MiB, else to 1/8 of the next power of two (under 25% waste).
    static func bucket(_ bytes: Int) -> Int {
        if bytes <= 1 << 20 { return (bytes + 255) & ~255 }
        let p = Int.bitWidth - (bytes - 1).leadingZeroBitCount   // 2^p >= bytes
        let step = 1 << (p - 3)
        return (bytes + step - 1) / step * step
    }

    public func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = Self.bucket(bytes)
        lock.lock()
        liveBytes += size
        peakLiveBytes = max(peakLiveBytes, liveBytes)
        if caching, var list = free[size], let p = list.popLast() {
            free[size] = list
            lock.unlock()
            return p
        }
        reservedBytes += size
        peakReservedBytes = max(peakReservedBytes, reservedBytes)
        systemAllocations += 1
        lock.unlock()
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, 64, size) == 0, let p else {
            fatalError("CachingAllocator: out of memory allocating \(size) bytes")
        }
        return p
    }

    public func release(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        let size = Self.bucket(byteCount)
        lock.lock(); defer { lock.unlock() }
        if pinned.contains(pointer) {   // a tape still replays into it: keep it out of the free list
            held[pointer] = size
            return
        }
        liveBytes -= size
        if caching {
            free[size, default: []].append(pointer)
        } else {
            reservedBytes -= size
            Foundation.free(pointer)
        }
    }

    /// Reserves blocks for a recorded kernel tape (`KernelTape.blocks`: pointer → byte count):
    /// cached free ones leave the free list, and live ones will not return to it when their tensors
    /// go, so nothing else is handed memory the tape replays into. Undo with `unpin`.
    public func pin(_ blocks: [UnsafeMutableRawPointer: Int]) {
        lock.lock(); defer { lock.unlock() }
        for (pointer, bytes) in blocks where !pinned.contains(pointer) {
            pinned.insert(pointer)
            let size = Self.bucket(bytes)
            if let i = free[size]?.firstIndex(of: pointer) {
                free[size]!.remove(at: i)
                liveBytes += size
                held[pointer] = size
            }
        }
    }

    /// Gives pinned blocks back: those whose tensors are gone return to the free list.
    public func unpin(_ blocks: [UnsafeMutableRawPointer: Int]) {
        var released: [(UnsafeMutableRawPointer, Int)] = []
        lock.lock()
        for pointer in blocks.keys where pinned.remove(pointer) != nil {
            if let size = held.removeValue(forKey: pointer) { released.append((pointer, size)) }
        }
        lock.unlock()
        for (pointer, size) in released { release(pointer, byteCount: size) }
    }

    /// Returns every cached block to the system.
    public func emptyCache() {
        lock.lock(); defer { lock.unlock() }
        for (size, list) in free {
            for p in list { Foundation.free(p) }
            reservedBytes -= size * list.count
        }
        free.removeAll()
    }
}
