import ArgumentParser
import Foundation
import NanoCUDA
import NanoDistributed
import NanoEngine

/// `nanodecoder cuda nccl`: NCCL's version and the MPI bootstrap of its communicator id on every
/// rank (no GPU needed); with `--all-reduce`, a real all-reduce across the ranks' GPUs, checked
/// and timed. Run it under mpirun: `mpirun -np 2 nanodecoder cuda nccl --all-reduce`.
struct CUDANCCLCheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nccl",
        abstract: "Check NCCL: version, communicator id agreed over MPI; --all-reduce sums a buffer across the ranks' GPUs.")

    @Flag(help: "Open the communicator on each rank's GPU and check an all-reduce (needs GPUs).") var allReduce = false
    @Option(help: "Elements in the all-reduce buffer.") var elements = 1 << 24

    func run() throws {
        try Nanodecoder.reporting {
            let communicator = try Communicator.fromEnvironment()
            let library = try NCCLLibrary()
            let id = try NCCLUniqueId.agreed(rank: communicator.rank, library: library) { bytes in
                try bytes.withUnsafeMutableBytes { try communicator.broadcast($0.baseAddress!, byteCount: $0.count, root: 0) }
            }
            let fingerprint = id.bytes.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
            print("rank \(communicator.rank) of \(communicator.size): NCCL \(library.version), communicator id \(String(fingerprint, radix: 16))")
            if allReduce { try checkAllReduce(library: library, id: id, communicator: communicator) }
            try communicator.finalize()
        }
    }

    /// Every rank fills element i with rank + 1 + i mod 7; the sum is n(n+1)/2 + n·(i mod 7).
    private func checkAllReduce(library: NCCLLibrary, id: NCCLUniqueId, communicator: Communicator) throws {
        guard let gpu = try CUDACommand.registerBackend(ordinal: 0, tf32: false) else {
            throw CommandFailure(description: "--all-reduce needs a GPU (NANODECODER_STAND_IN_DEVICE is set)")
        }
        let nccl = try NCCLCommunicator(library: library, backend: gpu, rank: communicator.rank, size: communicator.size, id: id)
        let n = communicator.size, rank = communicator.rank
        let values = (0..<elements).map { Float(rank + 1 + $0 % 7) }
        let buffer = try Tensor(values, shape: [elements], device: .cuda(0))
        var seconds: [Double] = []
        for round in 0..<6 {
            if round > 0 { try buffer.assign(try Tensor(values, shape: [elements], device: .cuda(0))) }
            try gpu.gpu.synchronize()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try nccl.allReduceSum(buffer)
            try nccl.waitForReductions()
            try gpu.gpu.synchronize()
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let got = try buffer.toArray()
        var worst: Float = 0
        for (i, v) in got.enumerated() {
            let expected = Float(n * (n + 1) / 2 + n * (i % 7))
            worst = max(worst, abs(v - expected))
        }
        let median = seconds.dropFirst().sorted()[seconds.count / 2 - 1]
        // Bus bandwidth as nccl-tests counts it: 2(n-1)/n of the buffer crosses each link.
        let busGBs = Double(elements * 4) * 2 * Double(n - 1) / Double(max(n, 1)) / median / 1e9
        print(String(format: "rank %d: all-reduce of %d floats %@ (largest error %g), median %.3f ms, bus bandwidth %.1f GB/s",
                     rank, elements, worst == 0 ? "correct" : "WRONG", worst, median * 1000, busGBs))
        if worst != 0 { throw ExitCode(1) }
    }
}
