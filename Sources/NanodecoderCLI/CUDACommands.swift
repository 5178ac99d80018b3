import ArgumentParser
import Foundation
import NanoCPU
import NanoCUDA
import NanoEngine

/// `nanodecoder cuda info|kernels`: what the GPU path finds on this machine, and the kernels
/// compiled with NVRTC (no GPU needed for that).
struct CUDACommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cuda", abstract: "NVIDIA GPU support: libraries found, kernel compilation.",
                                                    subcommands: [CUDAInfo.self, CUDAKernelsCommand.self, CUDASelfTest.self, CUDAConformance.self, CUDATrainCheck.self, CUDANCCLCheck.self], defaultSubcommand: CUDAInfo.self)

    /// Opens GPU `ordinal` as the backend of `.cuda(ordinal)` tensors (compiling the kernels on
    /// first use); without a driver, an error saying so and where we looked. Returns nil when
    /// NANODECODER_STAND_IN_DEVICE=1 registers a CPU backend in the GPU's place instead (for
    /// checking device placement, multi-process runs included, on machines without a GPU).
    @discardableResult
    static func registerBackend(ordinal: Int, tf32: Bool) throws -> CUDABackend? {
        if ProcessInfo.processInfo.environment["NANODECODER_STAND_IN_DEVICE"] == "1" {
            let standIn = CPUBackend(standingIn: .cuda(ordinal))
            BackendRegistry.register(standIn)
            emit("device: \(standIn.name) (NANODECODER_STAND_IN_DEVICE=1)")
            return nil
        }
        do {
            // Under mpirun every rank asks for cuda:0; each opens its local rank's GPU for it.
            let env = ProcessInfo.processInfo.environment
            let localRank = (env["OMPI_COMM_WORLD_LOCAL_RANK"] ?? env["SLURM_LOCALID"]).flatMap(Int.init)
            var physical: Int? = nil
            if ordinal == 0, let localRank, localRank > 0 {
                let count = try CUDADriver().devices().count
                physical = localRank % max(count, 1)
            }
            let backend = try CUDABackend.register(ordinal: ordinal, physical: physical, tf32: tf32)
            emit("device: \(backend.name)" + (physical.map { " for local rank \(localRank!) (GPU \($0) as cuda:0)" } ?? ""))
            return backend
        } catch let error as CUDALibraryError {
            throw CommandFailure(description: "--device cuda: no NVIDIA driver on this machine: \(error)")
        }
    }

    /// Parses --device (cpu, cuda, cuda:N).
    static func device(_ text: String) throws -> Device {
        guard let d = Device(parsing: text) else { throw ValidationError("--device: expected cpu, cuda or cuda:N, got '\(text)'") }
        return d
    }
}

/// `nanodecoder cuda conformance`: every engine op on the GPU against the CPU backend.
struct CUDAConformance: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conformance",
        abstract: "Run every engine op (forward and backward) on the GPU and on the CPU, and compare.")

    @Option(help: "GPU ordinal.") var device = 0
    @Option(help: "Only cases whose name contains this text.") var filter: String?
    @Flag(help: "fp32 GEMMs in TF32 (compared with a looser tolerance of 5e-3).") var tf32 = false

    func run() throws {
        try Nanodecoder.reporting {
            try CUDACommand.registerBackend(ordinal: device, tf32: tf32)
            var cases = BackendConformance.all.filter { filter == nil || $0.name.contains(filter!) }
            if tf32 { cases = cases.map { $0.allowing(5e-3) } }
            var failed = 0
            for c in cases {
                let t0 = Date()
                let r = BackendConformance.compare(.cuda(device), cases: [c])[0]
                if !r.passed { failed += 1 }
                let detail = r.worst.map { String(format: "largest difference %.2e (allowed %.0e)", $0, r.tolerance) } ?? "error: \(r.error ?? "?")"
                print(String(format: "%@ %-50@ %@  %.0f ms", r.passed ? "ok  " : "FAIL", r.name, detail, Date().timeIntervalSince(t0) * 1000))
            }
            print("\(cases.count - failed) of \(cases.count) cases agree with the CPU backend")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}

struct CUDAInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Report the NVIDIA driver, GPUs and CUDA libraries found.")

    func run() throws {
        print("search folders: " + CUDALibraryLoader.searchDirectories().joined(separator: ", "))
        do {
            let driver = try CUDADriver()
            print("driver: CUDA \(driver.driverVersion / 1000).\(driver.driverVersion % 1000 / 10)")
            for d in try driver.devices() { print("  \(d)") }
        } catch {
            print("driver: not available — \(error)")
        }
        do {
            let nvrtc = try NVRTC()
            print("NVRTC \(nvrtc.version.major).\(nvrtc.version.minor); CUDA headers: \(nvrtc.includePaths.isEmpty ? "none found (bf16 kernels need cuda_bf16.h)" : nvrtc.includePaths.joined(separator: ", "))")
        } catch {
            print("NVRTC: not available — \(error)")
        }
        do { _ = try CUDALibraryLoader.open(["libcublasLt.so", "libcublasLt.so.13", "libcublasLt.so.12"]); print("cuBLASLt: found") }
        catch { print("cuBLASLt: not available — \(error)") }
        do { print("NCCL \(try NCCLLibrary().version)") } catch { print("NCCL: not available — \(error)") }
    }
}

struct CUDAKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kernels", abstract: "Compile every GPU kernel with NVRTC (no GPU needed).")

    @Option(help: "Architectures, e.g. 80 (A100), 89, 90 (H100); repeatable.") var arch: [Int] = [80, 90]
    @Flag(help: "PTX instead of CUBIN.") var ptx = false
    @Option(help: "Write every kernel unit's CUDA C++ source into this folder instead of compiling.") var dump: String?

    func run() throws {
        try Nanodecoder.reporting {
            if let dump {
                try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
                for (name, source) in CUDAKernels.all {
                    try source.write(toFile: dump + "/" + name, atomically: true, encoding: .utf8)
                    print("\(dump)/\(name): \(CUDAKernels.entryPoints(of: source).count) kernels")
                }
                return
            }
            let nvrtc = try NVRTC(cacheDirectory: nil)
            print("NVRTC \(nvrtc.version.major).\(nvrtc.version.minor)")
            for a in arch {
                for (name, source) in CUDAKernels.all {
                    let target: NVRTC.Target = ptx ? .ptx(a) : .cubin(a)
                    let t0 = Date()
                    let bytes = try nvrtc.compile(source, name: name, target: target)
                    print(String(format: "%@ %@: %d bytes, %.0f ms (%@)", name, target.description, bytes.count,
                                 Date().timeIntervalSince(t0) * 1000, CUDAKernels.entryPoints(of: source).joined(separator: ", ")))
                }
            }
        }
    }
}
