import Foundation

/// The reduction applied element-wise across ranks.
public enum ReduceOperation: Sendable, CustomStringConvertible {
    case sum, max, min

    public var description: String {
        switch self { case .sum: "sum"; case .max: "max"; case .min: "min" }
    }

    func handle(in library: MPILibrary) -> MPIHandle {
        switch self { case .sum: library.sum; case .max: library.max; case .min: library.min }
    }
}

/// Blocking collectives on raw buffers. Buffers larger than `maxElementsPerCall` are split into
/// several MPI calls, because MPI counts are `Int32`. With one process each call is a no-op or a copy.
extension Communicator {
    // MARK: All-reduce

    /// Sums `count` floats element-wise over all ranks, in place: afterwards every rank holds the total.
    public func allReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int) throws {
        try allReduceInPlace(UnsafeMutableRawPointer(p), count: count, elementSize: 4, op: .sum) { $0.float }
    }

    /// Sums `count` doubles element-wise over all ranks, in place.
    public func allReduceSum(_ p: UnsafeMutablePointer<Double>, count: Int) throws {
        try allReduceInPlace(UnsafeMutableRawPointer(p), count: count, elementSize: 8, op: .sum) { $0.double }
    }

    /// Reduces `count` doubles element-wise over all ranks with `op`, in place.
    public func allReduce(_ p: UnsafeMutablePointer<Double>, count: Int, op: ReduceOperation) throws {
        try allReduceInPlace(UnsafeMutableRawPointer(p), count: count, elementSize: 8, op: op) { $0.double }
    }

    /// The element-wise reduction of `values` over all ranks (every rank passes the same count).
    public func allReduce(_ values: [Double], op: ReduceOperation) throws -> [Double] {
        var result = values
        try result.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            try allReduce(base, count: buffer.count, op: op)
        }
        return result
    }

    /// The sum of one value over all ranks (a loss, a token count).
    public func allReduceSum(_ value: Double) throws -> Double { try allReduce([value], op: .sum)[0] }

    /// The largest of one value over all ranks (a step time, a gradient norm).
    public func allReduceMax(_ value: Double) throws -> Double { try allReduce([value], op: .max)[0] }

    /// The smallest of one value over all ranks.
    public func allReduceMin(_ value: Double) throws -> Double { try allReduce([value], op: .min)[0] }

    // MARK: All-gather

    /// Gathers every rank's `countPerRank` floats into `receive` (`size × countPerRank` floats,
    /// rank `r`'s block at `r × countPerRank`) on every rank. `send` and `receive` must not overlap.
    public func allGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, countPerRank: Int) throws {
        try validate("allGather", count: countPerRank)
        guard isDistributed else {
            receive.update(from: send, count: countPerRank)
            return
        }
        if countPerRank <= maxElementsPerCall {
            try call("MPI_Allgather", bytes: countPerRank * size * 4) { mpi, world in
                mpi.allgather(send, Int32(countPerRank), mpi.float, receive, Int32(countPerRank), mpi.float, world)
            }
            return
        }
        let chunk = min(maxElementsPerCall, 1 << 24)
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: chunk * size)
        defer { packed.deallocate() }
        for offset in stride(from: 0, to: countPerRank, by: chunk) {
            let n = min(chunk, countPerRank - offset)
            try call("MPI_Allgather", bytes: n * size * 4) { mpi, world in
                mpi.allgather(send + offset, Int32(n), mpi.float, packed, Int32(n), mpi.float, world)
            }
            for r in 0..<size { (receive + r * countPerRank + offset).update(from: packed + r * n, count: n) }
        }
    }

    /// Every rank's `value`, indexed by rank; used to check that all ranks agree (config hashes).
    public func allGather(_ value: UInt64) throws -> [UInt64] {
        guard isDistributed else { return [value] }
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        try all.withUnsafeMutableBytes { out in
            try call("MPI_Allgather", bytes: 8 * size) { mpi, world in
                mpi.allgather(&mine, 1, mpi.uint64, out.baseAddress, 1, mpi.uint64, world)
            }
        }
        return all
    }

    // MARK: Broadcast and barrier

    /// Copies `byteCount` bytes at `p` from rank `root` to every other rank.
    public func broadcast(_ p: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws {
        try validate("broadcast", count: byteCount)
        guard root >= 0 && root < size else {
            throw MPIError.invalidArgument(function: "broadcast", message: "root \(root) is not a rank of this \(size)-process job")
        }
        guard isDistributed else { return }
        for offset in stride(from: 0, to: byteCount, by: maxElementsPerCall) {
            let n = min(maxElementsPerCall, byteCount - offset)
            try call("MPI_Bcast", bytes: n) { mpi, world in mpi.bcast(p + offset, Int32(n), mpi.byte, Int32(root), world) }
        }
    }

    /// Waits until every rank has reached this point.
    public func barrier() throws {
        guard isDistributed else { return }
        try call("MPI_Barrier") { mpi, world in mpi.barrier(world) }
    }

    // MARK: Helpers

    /// MPI_Allreduce with MPI_IN_PLACE over `count` elements of `elementSize` bytes, split into `Int32` counts.
    func allReduceInPlace(_ p: UnsafeMutableRawPointer, count: Int, elementSize: Int, op: ReduceOperation,
                          datatype: (MPILibrary) -> MPIHandle) throws {
        try validate("allReduce", count: count)
        guard isDistributed else { return }
        for offset in stride(from: 0, to: count, by: maxElementsPerCall) {
            let n = min(maxElementsPerCall, count - offset)
            try call("MPI_Allreduce", bytes: n * elementSize) { mpi, world in
                mpi.allreduce(MPILibrary.inPlace, p + offset * elementSize, Int32(n), datatype(mpi), op.handle(in: mpi), world)
            }
        }
    }

    func validate(_ function: String, count: Int) throws {
        guard count >= 0 else { throw MPIError.invalidArgument(function: function, message: "count \(count) is negative") }
        guard maxElementsPerCall > 0 && maxElementsPerCall <= Int(Int32.max) else {
            throw MPIError.invalidArgument(function: function, message: "maxElementsPerCall \(maxElementsPerCall) must be in 1 ... \(Int32.max)")
        }
    }
}
