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
