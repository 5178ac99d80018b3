import ArgumentParser
import Foundation
import NanoCUDA

/// `nanodecoder cuda info|kernels`: what the GPU path finds on this machine, and the kernels
/// compiled with NVRTC (no GPU needed for that).
struct CUDACommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cuda", abstract: "NVIDIA GPU support: libraries found, kernel compilation.",
                                                    subcommands: [CUDAInfo.self, CUDAKernelsCommand.self, CUDASelfTest.self, CUDATrainCheck.self], defaultSubcommand: CUDAInfo.self)

    /// The error `--device cuda` gives: no driver (with where we looked), or no backend yet.
    static func requireBackend() throws -> Never {
        do {
            let driver = try CUDADriver()
            let devices = try driver.devices()
            throw CommandFailure(description: "found \(devices.map(\.description).joined(separator: ", ")), but this build has no CUDA "
                + "training backend yet (the GPU kernels are only compile-checked; `nanodecoder cuda kernels` builds them). Use --device cpu.")
        } catch let error as CUDALibraryError {
            throw CommandFailure(description: "--device cuda: no NVIDIA driver on this machine: \(error)")
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
        for (label, names) in [("cuBLASLt", ["libcublasLt.so", "libcublasLt.so.13", "libcublasLt.so.12"]),
                               ("NCCL", ["libnccl.so", "libnccl.so.2"])] {
            do { _ = try CUDALibraryLoader.open(names); print("\(label): found") } catch { print("\(label): not available — \(error)") }
        }
    }
}

struct CUDAKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kernels", abstract: "Compile every GPU kernel with NVRTC (no GPU needed).")

    @Option(help: "Architectures, e.g. 80 (A100), 89, 90 (H100); repeatable.") var arch: [Int] = [80, 90]
    @Flag(help: "PTX instead of CUBIN.") var ptx = false

    func run() throws {
        try Nanodecoder.reporting {
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
