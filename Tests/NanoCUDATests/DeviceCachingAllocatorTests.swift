import Foundation
import NanoCUDA
import NanoEngine
import Testing

/// The GPU caching allocator's bookkeeping, on host memory standing in for the driver's.
@Suite struct DeviceCachingAllocatorTests {
    /// A fake driver: hands out addresses, refuses past a capacity, records frees.
    final class FakeDriver: @unchecked Sendable {
        var next: UInt64 = 0x1000, capacity: Int, inUse = 0, calls = 0
        var sizes: [UInt64: Int] = [:], freed: [UInt64] = []
        init(capacity: Int) { self.capacity = capacity }
        func allocate(_ bytes: Int) throws -> UInt64 {
            calls += 1
            guard inUse + bytes <= capacity else { throw CUDADriverError(call: "cuMemAlloc(\(bytes) bytes)", code: 2, name: "CUDA_ERROR_OUT_OF_MEMORY") }
            defer { next += UInt64(bytes) }
            inUse += bytes
            sizes[next] = bytes
            return next
        }
        func free(_ p: UInt64) { inUse -= sizes[p]!; freed.append(p) }
        func allocator() -> DeviceCachingAllocator {
            DeviceCachingAllocator(deviceName: "cuda:0 (fake)", allocate: { try self.allocate($0) }, free: { self.free($0) })
        }
    }

    /// While a graph is recorded, blocks come from a private pool: reused within the recording,
    /// kept from everyone else while the graph lives (its replays write them), and given back
    /// to the shared cache when it goes, the live ones once their tensors release them.
    @Test func graphPoolsKeepTheirBlocksUntilReleased() throws {
        let driver = FakeDriver(capacity: 1 << 30)
        let a = driver.allocator()
        let before = try a.allocate(1000)
        a.release(before, byteCount: 1000)                  // in the shared cache
        let pool = a.beginPool()
        let taken = try a.allocate(1000)                    // from the shared cache, now the pool's
        #expect(taken == before)
        let temp = try a.allocate(4096), kept = try a.allocate(4096)
        a.release(temp, byteCount: 4096)
        #expect(try a.allocate(4000) == temp, "a block freed during the recording is reused within it")
        a.release(temp, byteCount: 4096)
        a.release(taken, byteCount: 1000)
        a.endPool()
        #expect(a.reservedFreeBytes(pool: pool) == 4096 + 1024)
        // After the recording, nobody else gets the pool's blocks, not even from an empty cache.
        let outside = [try a.allocate(1000), try a.allocate(4096)]
        #expect(!outside.contains(taken) && !outside.contains(temp) && !outside.contains(kept))
        #expect(a.emptyCache() == 0 && !driver.freed.contains(temp), "emptyCache gives back shared blocks only")
        a.release(kept, byteCount: 4096)                    // a live block of the pool goes back to it
        #expect(a.reservedFreeBytes(pool: pool) == 2 * 4096 + 1024)
        a.releasePool(pool)
        #expect(a.reservedFreeBytes(pool: pool) == 0)
        let reused = [try a.allocate(1000), try a.allocate(4096), try a.allocate(4096)]
        #expect(Set(reused) == Set([taken, temp, kept]), "the pool's blocks are shared again")
        // A block of the pool still live at releasePool goes to the shared cache when freed.
        let pool2 = a.beginPool()
        let live = try a.allocate(512)
        a.endPool()
        a.releasePool(pool2)
        a.release(live, byteCount: 512)
        #expect(try a.allocate(512) == live)
    }

    @Test func freedBlocksAreReusedWithoutTheDriver() throws {
        let driver = FakeDriver(capacity: 1 << 30)
        let a = driver.allocator()
        let p = try a.allocate(1000), q = try a.allocate(3 << 20)
        #expect(driver.calls == 2 && a.liveBytes == 1024 + (3 << 20))
        a.release(p, byteCount: 1000)
        a.release(q, byteCount: 3 << 20)
        // Same rounded sizes come back from the cache: no driver call, same addresses.
        #expect(try a.allocate(900) == p)
        #expect(try a.allocate((3 << 20) - 5) == q)
        #expect(driver.calls == 2 && a.systemAllocations == 2 && driver.freed.isEmpty)
        #expect(a.peakLiveBytes == 1024 + (3 << 20) && a.reservedBytes == a.liveBytes)
    }

    @Test func bucketsBoundTheWaste() {
        #expect(DeviceCachingAllocator.bucket(1) == 512 && DeviceCachingAllocator.bucket(513) == 1024)
        for bytes in [1 << 20 + 1, 5_000_000, 123_456_789] {
            let b = DeviceCachingAllocator.bucket(bytes)
            #expect(b >= bytes && Double(b) < Double(bytes) * 1.25, "\(bytes) → \(b)")
        }
    }

    /// Out of memory: the cache goes back to the driver and the allocation is retried; if that
    /// fails too, the error names the device, the size and what is live.
    @Test func outOfMemoryEmptiesTheCacheThenReportsClearly() throws {
        let driver = FakeDriver(capacity: 4 << 20)
        let a = driver.allocator()
        let p = try a.allocate(3 << 20)
        a.release(p, byteCount: 3 << 20)   // cached: the driver still counts it as in use
        let q = try a.allocate(2 << 20)    // does not fit beside the cached block: flush, retry
        #expect(driver.freed == [p] && a.cacheFlushes == 1 && a.reservedBytes == 2 << 20)
        do {
            _ = try a.allocate(3 << 20)
            Issue.record("allocated past the device's capacity")
        } catch {
            let text = "\(error)"
            #expect(text.contains("cuda:0 (fake) is out of memory allocating 3.1 MB") && text.contains("2.1 MB held by live tensors")
                    && text.contains("CUDA_ERROR_OUT_OF_MEMORY"), "\(text)")
        }
        a.release(q, byteCount: 2 << 20)
        #expect(a.emptyCache() == 2 << 20 && a.reservedBytes == 0 && driver.inUse == 0)
    }
}
