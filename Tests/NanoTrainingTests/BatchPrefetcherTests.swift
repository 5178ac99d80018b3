import Foundation
import NanoData
import NanoEngine
@testable import NanoTraining
import Testing

/// The background batch assembly gives exactly the batches drawn without it.
struct BatchPrefetcherTests {
    @Test func prefetchedBatchesAreTheDirectlyDrawnOnes() throws {
        let data = try TokenDataset(folder: try makeDataset(vocab: 11, trainTokens: 3000, valTokens: 600))
        let file = data.train
        let prefetcher = BatchPrefetcher(file: file, batchSize: 6, blockSize: 16, rows: 2..<4)
        let a = Generator(seed: 7), b = Generator(seed: 7)
        func direct() throws -> ([Int32], [Int32]) {
            let starts = try file.randomStarts(count: 6, blockSize: 16, generator: b)
            let (x, y) = try file.batch(starts: Array(starts[2..<4]), blockSize: 16)
            return (try x.toInt32Array(), try y.toInt32Array())
        }
        for step in 0..<5 {
            let (x, y) = try prefetcher.next(generator: a)
            let (dx, dy) = try direct()
            let (px, py) = (try x.toInt32Array(), try y.toInt32Array())
            #expect(x.shape == [2, 16] && px == dx && py == dy, "draw \(step)")
            #expect(a.offset == b.offset, "the generator moves as without prefetching")
        }
        #expect(prefetcher.hits == 4 && prefetcher.misses == 1)
        // A generator moved back (a resumed run) or used in between gets its own batch, not the prefetched one.
        a.restore(offset: 8); b.restore(offset: 8)
        _ = a.reserve(count: 1); _ = b.reserve(count: 1)
        let (x, _) = try prefetcher.next(generator: a)
        let (px, dx) = (try x.toInt32Array(), try direct().0)
        #expect(px == dx)
        #expect(prefetcher.misses == 2)
    }

    @Test func aFileTooShortForTheBlockIsNamed() throws {
        let data = try TokenDataset(folder: try makeDataset(vocab: 11, trainTokens: 3000, valTokens: 600))
        let prefetcher = BatchPrefetcher(file: data.val, batchSize: 2, blockSize: 600, rows: 0..<2)
        #expect { _ = try prefetcher.next(generator: Generator(seed: 1)) } throws: { "\($0)".contains("val.bin") && "\($0)".contains("block_size 600") }
    }
}
