import Foundation
import NanoDistributed
import NanoEngine

// Data parallelism: every rank holds the whole model, computes its share of each global batch,
// and the ranks average their gradients before the (identical) optimizer step. Gradients are
// copied into flat buckets as backward finishes them, and each full bucket's all-reduce starts
// at once (non-blocking), so communication overlaps the rest of backward. On a GPU the buckets
// live in device memory and a `DeviceCollective` (NCCL) reduces them on a stream of its own;
// without one, they live in host memory and MPI reduces them (gradients copied out and back).

/// Averages gradients across ranks in buckets started while backward is still running.
final class GradientBucketer {
    private struct Slot {
        let tensor: Tensor
        let bucket: Int
        let offset: Int
    }

    let communicator: Communicator
    /// Reduces the buckets in device memory when set; otherwise MPI reduces host buckets.
    let collective: DeviceCollective?
    /// Whether buckets start during backward (false: all start after it, to measure the overlap).
    let overlap: Bool
    private let buffers: [Tensor]
    /// Where the buckets live.
    let bucketDevice: Device
    private var slots: [ObjectIdentifier: Slot] = [:]
    private let slotsPerBucket: [[ObjectIdentifier]]
    private var filled: Set<ObjectIdentifier> = []
    private var remaining: [Int] = []
    private var requests: [Communicator.Request?] = []
    private var nextBucket = 0
    /// Seconds spent waiting for reductions after backward, summed since the last `takeWaitTime`.
    private(set) var waitSeconds = 0.0

    /// `parameters` in declaration order; buckets fill from the end (the last layers' gradients are ready first).
    init(parameters: [Tensor], communicator: Communicator, collective: DeviceCollective? = nil,
         bucketElements: Int = 1 << 20, overlap: Bool = true) throws {
        self.communicator = communicator
        self.collective = collective
        self.overlap = overlap
        var buckets: [[Tensor]] = [[]]
        var size = 0
        for p in parameters.reversed() {
            if size > 0 && size + p.count > bucketElements { buckets.append([]); size = 0 }
            buckets[buckets.count - 1].append(p)
            size += p.count
        }
        let bucketDevice = collective?.device ?? .cpu
        self.bucketDevice = bucketDevice
        var buffers: [Tensor] = [], perBucket: [[ObjectIdentifier]] = []
        for (b, members) in buckets.enumerated() {
            var offset = 0
            var ids: [ObjectIdentifier] = []
            for p in members {
                slots[ObjectIdentifier(p)] = Slot(tensor: p, bucket: b, offset: offset)
                ids.append(ObjectIdentifier(p))
                offset += p.count
            }
            // The collective's device, or host memory where MPI reads and writes it.
            buffers.append(try Tensor.zeros([max(offset, 1)], device: bucketDevice))
            perBucket.append(ids)
        }
        self.buffers = buffers
        slotsPerBucket = perBucket
    }

    var bucketCount: Int { buffers.count }
    var elementCount: Int { buffers.reduce(0) { $0 + $1.count } }

    /// Starts a step: no gradient is in a bucket yet.
    func begin() {
        filled = []
        remaining = slotsPerBucket.map(\.count)
        requests = Array(repeating: nil, count: buffers.count)
        nextBucket = 0
    }

    /// Backward's hook: copies a finished gradient into its bucket and starts every bucket that is
    /// complete, in bucket order (all ranks must start collectives in the same order).
    func gradientReady(_ t: Tensor) throws {
        let id = ObjectIdentifier(t)
        guard let slot = slots[id], let grad = t.grad, !filled.contains(id) else { return }
        try buffers[slot.bucket].flatView(start: slot.offset, count: t.count).assign(try grad.reshaped([t.count]))
        filled.insert(id)
        remaining[slot.bucket] -= 1
        if overlap {
            try launchReady()
            // Open MPI advances non-blocking collectives only inside MPI calls: poll the ones in
            // flight so they progress while backward computes (a device collective needs no help).
            for request in requests.prefix(nextBucket) { if let request, !request.isComplete { _ = try request.test() } }
        }
    }

    private func launchReady() throws {
        while nextBucket < buffers.count && remaining[nextBucket] == 0 {
            if let collective {
                try collective.allReduceSum(buffers[nextBucket])
            } else {
                requests[nextBucket] = try communicator.iAllReduceSum(buffers[nextBucket].pointer(as: Float.self), count: buffers[nextBucket].count)
            }
            nextBucket += 1
        }
    }

    /// Completes the reduction: parameters that got no gradient contribute zeros, every bucket is
    /// started and waited for, and each parameter's `grad` becomes the mean over ranks.
    func finish() throws {
        for (b, ids) in slotsPerBucket.enumerated() where remaining[b] > 0 {
            for id in ids where !filled.contains(id) {
                let slot = slots[id]!
                try buffers[b].flatView(start: slot.offset, count: slot.tensor.count).assign(try Tensor.zeros([slot.tensor.count], device: bucketDevice))
                filled.insert(id)
            }
            remaining[b] = 0
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        try launchReady()
        for request in requests { try request?.wait() }
        try collective?.waitForReductions()
        waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let scale = 1 / Float(communicator.size)
        for (b, buffer) in buffers.enumerated() {
            try buffer.scaleInPlace(by: scale)
            for id in slotsPerBucket[b] {
                let slot = slots[id]!
                let mean = try buffer.flatView(start: slot.offset, count: slot.tensor.count).reshaped(slot.tensor.shape)
                if let grad = slot.tensor.grad { try grad.assign(mean) } else {
                    let grad = try Tensor.zeros(slot.tensor.shape, device: slot.tensor.device)
                    try grad.assign(mean)
                    slot.tensor.grad = grad
                }
            }
        }
    }

    func takeWaitTime() -> Double { defer { waitSeconds = 0 }; return waitSeconds }

    /// Backward from `loss`, seeded with `seed`. With `bucketer` (the last micro-step of a
    /// data-parallel step: its hook sees the accumulated gradients), the gradients are also
    /// averaged across ranks, bucket by bucket as backward finishes them.
    static func backward(_ loss: Tensor, seed: Tensor, reducingWith bucketer: GradientBucketer?) throws {
        guard let bucketer else { return try loss.backward(gradient: seed) }
        bucketer.begin()
        try loss.backward(gradient: seed, onGradientReady: bucketer.gradientReady)
        try bucketer.finish()
    }
}

/// A stable 64-bit FNV-1a hash, to compare configs and data files across ranks.
func fnv1a(_ bytes: some Sequence<UInt8>, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var h = seed
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// Hash of a file's size and up to 64 evenly spaced 64 KiB chunks (cheap for large token files).
func fileFingerprint(_ path: String) -> UInt64 {
    guard let handle = FileHandle(forReadingAtPath: path) else { return fnv1a(Array("missing:\(path)".utf8)) }
    defer { try? handle.close() }
    let size = (try? handle.seekToEnd()) ?? 0
    var h = fnv1a(Array(String(size).utf8))
    let chunk: UInt64 = 65536
    let count: UInt64 = size <= 64 * chunk ? (size + chunk - 1) / chunk : 64
    for i in 0..<count {
        let offset = size <= 64 * chunk ? i * chunk : (size - chunk) * i / max(count - 1, 1)
        try? handle.seek(toOffset: offset)
        if let data = try? handle.read(upToCount: Int(chunk)) { h = fnv1a(data, seed: h) }
    }
    return h
}
