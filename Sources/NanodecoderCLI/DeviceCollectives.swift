import Foundation
import NanoCPU
import NanoCUDA
import NanoDistributed
import NanoEngine
import NanoTraining

extension CUDACommand {
    /// The collective that reduces data-parallel gradients in device memory (`device.collective`):
    /// nil on the CPU, for one process, or with `host` (buckets staged through host memory, MPI).
    /// On GPUs, NCCL: every rank loads it, the ranks agree that all have it, rank 0's id reaches
    /// the others over MPI and each joins the communicator on its GPU. `auto` falls back to host
    /// staging, saying so, when any rank lacks NCCL; `nccl` makes that an error. A CPU backend
    /// standing in for the GPU gets `HostMemoryCollective` (MPI on its buckets, NCCL's stand-in).
    static func deviceCollective(device: Device, mode: String, communicator: Communicator) throws -> DeviceCollective? {
        guard device != .cpu, communicator.isDistributed, mode != "host" else { return nil }
        let backend = try BackendRegistry.backend(for: device)
        if backend is CPUBackend { return HostMemoryCollective(device: device, communicator: communicator) }
        guard let gpu = backend as? CUDABackend else { return nil }
        var library: NCCLLibrary? = nil
        var problem = ""
        do { library = try NCCLLibrary() } catch { problem = "\(error)" }
        let everyRankHasIt = try communicator.allReduceMin(library == nil ? 0 : 1) > 0
        guard let library, everyRankHasIt else {
            let reason = library == nil ? "rank \(communicator.rank): \(problem)" : "another rank could not load NCCL"
            if mode == "nccl" { throw ConfigError(file: "config", key: "device.collective", message: "nccl was asked for, but \(reason)") }
            if communicator.rank == 0 || library == nil {
                emit("note: gradients go through host memory and MPI (device.collective: auto), because \(reason)")
            }
            return nil
        }
        let id = try NCCLUniqueId.agreed(rank: communicator.rank, library: library) { bytes in
            try bytes.withUnsafeMutableBytes { try communicator.broadcast($0.baseAddress!, byteCount: $0.count, root: 0) }
        }
        return try NCCLCommunicator(library: library, backend: gpu, rank: communicator.rank, size: communicator.size, id: id)
    }
}
