import Foundation

extension Communicator {
    /// A collective started without waiting (MPI_Iallreduce and friends). The buffer belongs to
    /// MPI until `wait()` returns or `test()` returns `true`. Requests may be completed in any
    /// order. One started over more than `maxElementsPerCall` elements holds several MPI requests.
    ///
    /// Open MPI moves a non-blocking collective forward only inside MPI calls: to overlap it with
    /// computation, call `test()` on any pending request every millisecond or so; otherwise all
    /// the work happens in `wait()`.
    public final class Request: @unchecked Sendable {
        private let communicator: Communicator
        private var handles: [MPIHandle?]
        private let bytes: Int
        /// `true` once every part has finished.
        public private(set) var isComplete: Bool

        init(communicator: Communicator, handles: [MPIHandle?], bytes: Int) {
            self.communicator = communicator
            self.handles = handles
            self.bytes = bytes
            isComplete = handles.isEmpty
        }

        /// Blocks until the collective has finished on this rank (MPI_Wait). Bounded by the
        /// collective watchdog like the blocking collectives.
        public func wait() throws {
            guard !isComplete else { return }
            for i in handles.indices where handles[i] != nil {
                try communicator.call("MPI_Wait", bytes: bytes) { mpi, _ in mpi.wait(&handles[i], nil) }
            }
            isComplete = true
        }

        /// Whether the collective has finished (MPI_Test); also drives its progress, so a loop
        /// doing other work should call it now and then.
        public func test() throws -> Bool {
            guard !isComplete else { return true }
            var allDone = true
            for i in handles.indices where handles[i] != nil {
                var flag: Int32 = 0
                try communicator.call("MPI_Test", watch: false) { mpi, _ in mpi.test(&handles[i], &flag, nil) }
                // Open MPI sets a finished request to MPI_REQUEST_NULL; keep it nil-free for clarity.
                if flag != 0 { handles[i] = nil } else { allDone = false }
            }
            isComplete = allDone
            return allDone
        }

        deinit {
            // MPI may still write into the caller's buffer; never let a pending request go.
            if !isComplete { try? wait() }
        }
    }

    /// Starts summing `count` floats over all ranks in place and returns at once (MPI_Iallreduce).
    /// Do not touch the buffer until the request completes.
    public func iAllReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int) throws -> Request {
        try validate("iAllReduceSum", count: count)
        guard isDistributed else { return Request(communicator: self, handles: [], bytes: 0) }
        var handles: [MPIHandle?] = []
        do {
            for offset in stride(from: 0, to: count, by: maxElementsPerCall) {
                let n = min(maxElementsPerCall, count - offset)
                var handle: MPIHandle?
                try call("MPI_Iallreduce", bytes: n * 4, watch: false) { mpi, world in
                    mpi.iallreduce(MPILibrary.inPlace, p + offset, Int32(n), mpi.float, mpi.sum, world, &handle)
                }
                handles.append(handle)
            }
        } catch {
            // Finish the parts already started before handing the buffer back.
            try? Request(communicator: self, handles: handles, bytes: count * 4).wait()
            throw error
        }
        return Request(communicator: self, handles: handles, bytes: count * 4)
    }
}
