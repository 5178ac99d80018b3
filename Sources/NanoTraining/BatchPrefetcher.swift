import Dispatch
import NanoData
import NanoEngine

/// Assembles the next training batch's tokens on a background thread while the current step
/// runs, so reading the memory-mapped token file (page faults to disk on a large dataset)
/// overlaps the step's compute instead of stalling it.
///
/// The batches are exactly the ones drawn without it. Window starts are a pure function of the
/// generator's seed and offset (counter-based Philox), so the prefetcher assembles the batch at
/// the offset the next draw will reserve, and a draw uses it only when it reserves exactly that
/// offset (a generator restored from a checkpoint, or used for anything else in between, gets
/// its batch assembled on the spot). The generator moves only when a batch is drawn, so a
/// checkpoint saves the same data position with or without prefetching.
final class BatchPrefetcher: @unchecked Sendable {
    /// One batch being assembled (or assembled) for the draw at `offset` of the stream `seed`.
    private final class Job: @unchecked Sendable {
        let seed: UInt64, offset: UInt64
        let done = DispatchSemaphore(value: 0)
        var tokens: (inputs: [Int32], targets: [Int32]) = ([], [])
        init(seed: UInt64, offset: UInt64) { self.seed = seed; self.offset = offset }
    }

    let file: TokenFile
    /// Windows per global batch, tokens per window, and this rank's rows of the global batch.
    let batchSize: Int, blockSize: Int, rows: Range<Int>
    private var pending: Job?
    private let queue = DispatchQueue(label: "nanodecoder.batch-prefetch", qos: .userInitiated)
    /// Draws served by a prefetched batch, and draws assembled on the spot.
    private(set) var hits = 0, misses = 0

    init(file: TokenFile, batchSize: Int, blockSize: Int, rows: Range<Int>) {
        self.file = file; self.batchSize = batchSize; self.blockSize = blockSize; self.rows = rows
    }

    /// The next batch of `generator`'s stream (this rank's rows), as `TokenFile.batch` would
    /// give it; starts assembling the one after.
    func next(generator: Generator) throws -> (x: Tensor, y: Tensor) {
        try file.checkWindows(blockSize: blockSize)
        let offset = generator.reserve(count: batchSize)
        let tokens: (inputs: [Int32], targets: [Int32])
        if let job = pending, job.seed == generator.seed, job.offset == offset {
            job.done.wait()
            tokens = job.tokens
            hits += 1
        } else {
            tokens = assemble(seed: generator.seed, offset: offset)
            misses += 1
        }
        // The next draw reserves from where this one left the generator.
        let job = Job(seed: generator.seed, offset: generator.offset)
        pending = job
        queue.async { [self] in
            job.tokens = assemble(seed: job.seed, offset: job.offset)
            job.done.signal()
        }
        return (try Tensor(indices: tokens.inputs, shape: [rows.count, blockSize]),
                try Tensor(indices: tokens.targets, shape: [rows.count, blockSize]))
    }

    private func assemble(seed: UInt64, offset: UInt64) -> (inputs: [Int32], targets: [Int32]) {
        let starts = file.randomStarts(count: batchSize, blockSize: blockSize, seed: seed, offset: offset)
        return file.hostBatch(starts: Array(starts[rows]), blockSize: blockSize)
    }
}
