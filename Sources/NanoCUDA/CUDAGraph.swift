import Foundation
import NanoEngine

/// A CUDA graph recorded by stream capture (`CUDABackend.captureGraph`) and instantiated: one
/// `cuGraphLaunch` replays every kernel, copy and cuBLASLt GEMM of the recorded stretch, on the
/// same device memory. It keeps what the recording relies on: the allocator pool of the memory
/// its kernels use, and the device copies of host data written while recording.
public final class CUDAGraph: DeviceGraph {
    typealias BeginCapture = @convention(c) (OpaquePointer?, Int32) -> Int32
    typealias EndCapture = @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    typealias Instantiate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> Int32
    typealias Launch = @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    typealias Destroy = @convention(c) (OpaquePointer?) -> Int32
    typealias GetNodes = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>) -> Int32

    /// The driver's graph functions.
    struct API {
        let beginCapture: BeginCapture, endCapture: EndCapture, instantiate: Instantiate, launch: Launch
        let destroyExec: Destroy, destroyGraph: Destroy, getNodes: GetNodes

        init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
            let sym = try CUDALibraryLoader.driver(environment: environment)
            beginCapture = try sym("cuStreamBeginCapture_v2", BeginCapture.self)
            endCapture = try sym("cuStreamEndCapture", EndCapture.self)
            instantiate = try sym("cuGraphInstantiateWithFlags", Instantiate.self)
            launch = try sym("cuGraphLaunch", Launch.self)
            destroyExec = try sym("cuGraphExecDestroy", Destroy.self)
            destroyGraph = try sym("cuGraphDestroy", Destroy.self)
            getNodes = try sym("cuGraphGetNodes", GetNodes.self)
        }
    }

    private let api: API
    private let context: CUDAContext
    private let graph: OpaquePointer?
    private let exec: OpaquePointer?
    private let release: () -> Void
    public let nodeCount: Int
    public var summary: String { "CUDA graph of \(nodeCount) nodes" }

    /// Instantiates `graph`; `release` gives back the pool and constants when the graph goes
    /// (also when instantiating fails).
    init(api: API, context: CUDAContext, graph: OpaquePointer?, release: @escaping () -> Void) throws {
        self.api = api
        self.context = context
        self.graph = graph
        self.release = release
        var nodes = 0, exec: OpaquePointer? = nil
        do {
            try context.check("cuGraphGetNodes", api.getNodes(graph, nil, &nodes))
            try context.check("cuGraphInstantiateWithFlags", api.instantiate(&exec, graph, 0))
        } catch {
            _ = api.destroyGraph(graph)
            release()
            throw error
        }
        nodeCount = nodes
        self.exec = exec
    }

    deinit {
        try? context.makeCurrent()
        try? context.synchronize()   // a replay still running uses the pool
        _ = api.destroyExec(exec)
        _ = api.destroyGraph(graph)
        release()
    }

    /// Launches the graph on the legacy default stream: after the kernels and copies enqueued
    /// before, and before anything enqueued or read back after.
    public func replay() throws {
        try context.makeCurrent()
        try context.check("cuGraphLaunch", api.launch(exec, nil))
    }
}

extension CUDABackend: GraphCapturing {
    /// Records `body` by capturing a stream of its own (relaxed mode, so a cache miss may still
    /// call cuMemAlloc), with the allocator serving a private pool: blocks freed inside `body`
    /// are reused inside it, as in eager mode, but never handed to anyone else while the graph
    /// lives. Host data written inside `body` goes to device memory kept with the graph, and a
    /// recorded copy puts it in place, so every replay writes it again.
    public func captureGraph(_ body: () throws -> Void) throws -> any DeviceGraph {
        guard capture == nil else { throw TensorError.invalidArgument(op: "captureGraph", message: "\(device) is already recording a graph") }
        let api = try CUDAGraph.API()
        let stream = try CUDAStream(context: gpu)
        let pool = allocator.beginPool()
        capture = Capture()
        gpu.stream = stream.handle
        var failure: Error? = nil
        do { try gpu.check("cuStreamBeginCapture", api.beginCapture(stream.handle, 2)) }   // CU_STREAM_CAPTURE_MODE_RELAXED
        catch { failure = error }
        if failure == nil {
            do { try body() } catch { failure = error }
        }
        // Capture ends whatever happened, so the stream is usable (and the pool released) after an error.
        var graph: OpaquePointer? = nil
        let ended = api.endCapture(stream.handle, &graph)
        gpu.stream = nil
        allocator.endPool()
        let constants = capture!.constants
        capture = nil
        let release: () -> Void = { [allocator, gpu] in
            for c in constants { gpu.release(c.address) }
            allocator.releasePool(pool)
        }
        // The driver's own error: invalidated (an operation the graph cannot hold ran during it),
        // unjoined (a stream forked into the capture did not join back), ...
        if failure == nil, ended != 0 {
            do { try gpu.check("cuStreamEndCapture", ended) } catch { failure = error }
        }
        if let failure {
            if graph != nil { _ = api.destroyGraph(graph) }
            release()
            throw failure
        }
        return try CUDAGraph(api: api, context: gpu, graph: graph, release: release)
    }
}
