import Foundation

/// A CUDA stream of its own, with the events that order it against the backend's stream.
///
/// The backend runs every kernel on its context's current stream (`CUDAContext.stream`): the
/// legacy default stream, or the capture stream while a graph is recorded. The legacy stream
/// implicitly waits for (and is waited for by) every *blocking* stream, so a stream that must run
/// beside it (NCCL's reductions during backward) is created non-blocking, and the two are ordered
/// with events only where they must be: `waitForDefaultStream()` before work that reads what the
/// kernels wrote, `makeDefaultStreamWait()` before kernels that read what this stream wrote.
/// While a graph is recorded those events fork this stream into the capture and join it back, so
/// the graph holds this stream's work too, in the same order.
public final class CUDAStream {
    private typealias StreamCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Int32
    private typealias StreamDestroy = @convention(c) (OpaquePointer?) -> Int32
    private typealias StreamSynchronize = @convention(c) (OpaquePointer?) -> Int32
    private typealias EventCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Int32
    private typealias EventDestroy = @convention(c) (OpaquePointer?) -> Int32
    private typealias EventRecord = @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    private typealias StreamWaitEvent = @convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> Int32

    /// The stream, as the CUDA libraries take it (`CUstream` / `cudaStream_t`).
    public let handle: OpaquePointer?
    private let context: CUDAContext
    private let destroyStream: StreamDestroy, synchronizeStream: StreamSynchronize, destroyEvent: EventDestroy
    private let record: EventRecord, streamWait: StreamWaitEvent
    /// Recorded on the kernels' stream: "the kernels enqueued so far are done".
    private let kernelsDone: OpaquePointer?
    /// Recorded on this stream: "the work enqueued here so far is done".
    private let workDone: OpaquePointer?

    /// A non-blocking stream (CU_STREAM_NON_BLOCKING) on `context`'s device.
    public init(context: CUDAContext, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.context = context
        let sym = try CUDALibraryLoader.driver(environment: environment)
        let createStream = try sym("cuStreamCreate", StreamCreate.self)
        let createEvent = try sym("cuEventCreate", EventCreate.self)
        destroyStream = try sym("cuStreamDestroy_v2", StreamDestroy.self)
        synchronizeStream = try sym("cuStreamSynchronize", StreamSynchronize.self)
        destroyEvent = try sym("cuEventDestroy_v2", EventDestroy.self)
        record = try sym("cuEventRecord", EventRecord.self)
        streamWait = try sym("cuStreamWaitEvent", StreamWaitEvent.self)
        try context.makeCurrent()
        var stream: OpaquePointer? = nil, a: OpaquePointer? = nil, b: OpaquePointer? = nil
        try context.check("cuStreamCreate(non-blocking)", createStream(&stream, 1))   // CU_STREAM_NON_BLOCKING
        try context.check("cuEventCreate", createEvent(&a, 2))                         // CU_EVENT_DISABLE_TIMING
        try context.check("cuEventCreate", createEvent(&b, 2))
        handle = stream
        kernelsDone = a
        workDone = b
    }

    deinit {
        try? context.makeCurrent()
        _ = synchronizeStream(handle)
        _ = destroyEvent(kernelsDone)
        _ = destroyEvent(workDone)
        _ = destroyStream(handle)
    }

    /// Work enqueued on this stream from now on starts after the kernels already enqueued on the
    /// kernels' stream (the host does not wait).
    public func waitForDefaultStream() throws {
        try context.makeCurrent()
        try context.check("cuEventRecord(kernel stream)", record(kernelsDone, context.stream))
        try context.check("cuStreamWaitEvent", streamWait(handle, kernelsDone, 0))
    }

    /// Kernels enqueued on the kernels' stream from now on start after the work already enqueued
    /// on this stream (the host does not wait).
    public func makeDefaultStreamWait() throws {
        try context.makeCurrent()
        try context.check("cuEventRecord(stream)", record(workDone, handle))
        try context.check("cuStreamWaitEvent(kernel stream)", streamWait(context.stream, workDone, 0))
    }

    /// Blocks the host until this stream's work is done.
    public func synchronize() throws {
        try context.makeCurrent()
        try context.check("cuStreamSynchronize", synchronizeStream(handle))
    }
}
