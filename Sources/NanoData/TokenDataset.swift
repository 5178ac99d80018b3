import Foundation
import NanoEngine

/// A token file (`train.bin` or `val.bin`): raw little-endian uint16 or uint32 tokens, memory-mapped.
public final class TokenFile: @unchecked Sendable {
    public let path: String
    public let count: Int
    private let data: Data
    private let wide: Bool

    public init(path: String, meta: DatasetMeta) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError.invalid(path: path, reason: "missing: run `nanodecoder prepare` to create the dataset")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw DataError.invalid(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        guard data.count % meta.bytesPerToken == 0 else {
            throw DataError.invalid(path: path, reason: "\(data.count) bytes is not a whole number of \(meta.dtype) tokens (truncated file?)")
        }
        self.path = path
        self.data = data
        self.wide = meta.bytesPerToken == 4
        self.count = data.count / meta.bytesPerToken
        // Every token must be a valid id: a corrupted file must not train on garbage.
        let maxToken = data.withUnsafeBytes { raw -> Int in
            if wide { return Int(raw.bindMemory(to: UInt32.self).max() ?? 0) }
            return Int(raw.bindMemory(to: UInt16.self).max() ?? 0)
        }
        guard maxToken < meta.vocabSize else {
            throw DataError.invalid(path: path, reason: "contains token \(maxToken) but vocab_size is \(meta.vocabSize) (file does not belong to this meta.json?)")
        }
    }

    /// Token at position i.
    @inline(__always) public subscript(i: Int) -> Int32 {
        data.withUnsafeBytes { raw in
            wide ? Int32(bitPattern: raw.load(fromByteOffset: i * 4, as: UInt32.self)) : Int32(raw.load(fromByteOffset: i * 2, as: UInt16.self))
        }
    }

    /// Inputs and next-token targets [batch, blockSize] from random windows of blockSize + 1 tokens.
    /// Window starts come from `generator`, so a run's batches are reproducible and resumable.
    public func randomBatch(batchSize: Int, blockSize: Int, generator: Generator) throws -> (inputs: Tensor, targets: Tensor) {
        try batch(starts: randomStarts(count: batchSize, blockSize: blockSize, generator: generator), blockSize: blockSize)
    }

    /// `count` random window starts for windows of blockSize + 1 tokens, drawn from `generator`.
    public func randomStarts(count n: Int, blockSize: Int, generator: Generator) throws -> [Int] {
        try checkWindows(blockSize: blockSize)
        return randomStarts(count: n, blockSize: blockSize, seed: generator.seed, offset: generator.reserve(count: n))
    }

    /// The starts `randomStarts(count:blockSize:generator:)` gives when the generator stands at
    /// `offset`: a pure function of seed and offset (Philox is counter-based), so a batch can be
    /// assembled ahead of time (`BatchPrefetcher`) without moving the generator.
    public func randomStarts(count n: Int, blockSize: Int, seed: UInt64, offset: UInt64) -> [Int] {
        let starts = max(count - blockSize, 1)
        return (0..<n).map { b in
            // 64 random bits per window start (a float would round positions in large files).
            let r = Philox.block(counter: offset &+ UInt64(b), seed: seed)
            return Int((UInt64(r[0]) << 32 | UInt64(r[1])) % UInt64(starts))
        }
    }

    /// Throws unless the file holds at least one window of blockSize + 1 tokens.
    public func checkWindows(blockSize: Int) throws {
        guard count - blockSize >= 1 else {
            throw DataError.invalid(path: path, reason: "holds \(count) tokens, too few for block_size \(blockSize) (need at least \(blockSize + 1))")
        }
    }

    /// Inputs and next-token targets [starts.count, blockSize] of the windows at `starts`.
    public func batch(starts: [Int], blockSize: Int) throws -> (inputs: Tensor, targets: Tensor) {
        let (x, y) = hostBatch(starts: starts, blockSize: blockSize)
        return (try Tensor(indices: x, shape: [starts.count, blockSize]), try Tensor(indices: y, shape: [starts.count, blockSize]))
    }

    /// The tokens of `batch(starts:blockSize:)`, row-major in host arrays (reading them touches
    /// the mapped file: on a large dataset, page faults to disk).
    public func hostBatch(starts: [Int], blockSize: Int) -> (inputs: [Int32], targets: [Int32]) {
        var x = [Int32](repeating: 0, count: starts.count * blockSize), y = x
        for (b, start) in starts.enumerated() {
            for t in 0..<blockSize {
                x[b * blockSize + t] = self[start + t]
                y[b * blockSize + t] = self[start + t + 1]
            }
        }
        return (x, y)
    }
}

/// A prepared dataset folder: meta.json, train.bin, val.bin.
public struct TokenDataset: Sendable {
    public let folder: String
    public let meta: DatasetMeta
    public let train: TokenFile
    public let val: TokenFile

    public init(folder: String) throws {
        self.folder = folder
        meta = try DatasetMeta.load(folder: folder)
        train = try TokenFile(path: folder + "/train.bin", meta: meta)
        val = try TokenFile(path: folder + "/val.bin", meta: meta)
    }
}
