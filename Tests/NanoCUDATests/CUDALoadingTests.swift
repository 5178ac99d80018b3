import Foundation
import NanoCUDA
import Testing

/// The GPU path without a GPU: libraries are found (or clearly reported missing), and every
/// kernel compiles with NVRTC for Ampere (sm_80) and Hopper (sm_90).
@Suite struct CUDALoadingTests {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    /// NVIDIA's NVRTC and runtime-header wheels, installed by scripts/test.sh.
    static let wheelSite = repoRoot + "/.cuda-site"
    static var haveNVRTC: Bool { FileManager.default.fileExists(atPath: wheelSite + "/nvidia/cuda_nvrtc/lib") }

    @Test func missingLibraryNamesItselfAndEveryFolderSearched() throws {
        let root = NSTemporaryDirectory() + "cuda-root-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/nvidia/cuda_nvrtc/lib", withIntermediateDirectories: true)
        let env = ["NANODECODER_CUDA_PATH": root]
        #expect(CUDALibraryLoader.searchDirectories(environment: env).first == root + "/nvidia/cuda_nvrtc/lib")
        do {
            _ = try CUDALibraryLoader.open(["libnanodecoder-missing.so.1"], environment: env)
            Issue.record("opened a library that does not exist")
        } catch let error as CUDALibraryError {
            #expect(error.description.contains("libnanodecoder-missing.so.1"))
            #expect(error.description.contains(root + "/nvidia/cuda_nvrtc/lib"))
            #expect(error.description.contains("NANODECODER_CUDA_PATH"))
        }
    }

    @Test func noDriverIsAClearError() throws {
        guard dlopen("libcuda.so.1", RTLD_NOW) == nil else { return }   // a machine with an NVIDIA driver
        #expect(throws: CUDALibraryError.self) { try CUDADriver() }
        do { _ = try CUDADriver() } catch { #expect("\(error)".contains("libcuda.so.1")) }
    }

    @Test(.enabled(if: haveNVRTC || ProcessInfo.processInfo.environment["CI"] != nil, "needs .cuda-site (scripts/test.sh installs it)"),
          arguments: [80, 90])
    func everyKernelCompilesForAmpereAndHopper(arch: Int) throws {
        #expect(Self.haveNVRTC, "\(Self.wheelSite) is missing: scripts/test.sh installs nvidia-cuda-nvrtc-cu12 there")
        let cache = NSTemporaryDirectory() + "kernels-\(UUID().uuidString)"
        let nvrtc = try NVRTC(environment: ["NANODECODER_CUDA_PATH": Self.wheelSite], cacheDirectory: cache)
        #expect(!nvrtc.includePaths.isEmpty, "cuda_bf16.h not found next to the NVRTC wheel")
        for (name, source) in CUDAKernels.all {
            let cubin = try nvrtc.compile(source, name: name, target: .cubin(arch))
            #expect(cubin.starts(with: [0x7f, 0x45, 0x4c, 0x46]), "\(name): not an ELF cubin")
            let symbols = String(decoding: cubin, as: UTF8.self)
            for entry in CUDAKernels.entryPoints(of: source) { #expect(symbols.contains(entry), "\(name): \(entry) missing from the sm_\(arch) cubin") }
            let ptx = try nvrtc.compile(source, name: name, target: .ptx(arch))
            #expect(String(decoding: ptx, as: UTF8.self).contains(".target sm_\(arch)"))
            // The second compile of the same source comes from the disk cache.
            #expect(try nvrtc.compile(source, name: name, target: .cubin(arch)) == cubin)
        }
        #expect(CUDAKernels.all.flatMap { CUDAKernels.entryPoints(of: $0.source) }.count >= 18)
    }

    @Test(.enabled(if: haveNVRTC)) func compileErrorsCarryNVRTCsLog() throws {
        let nvrtc = try NVRTC(environment: ["NANODECODER_CUDA_PATH": Self.wheelSite], cacheDirectory: nil)
        do {
            _ = try nvrtc.compile("extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }", name: "broken.cu", target: .cubin(90))
            Issue.record("a broken kernel compiled")
        } catch let error as NVRTCError {
            #expect(error.description.contains("broken.cu") && error.description.contains("undefined_name"))
        }
    }

    /// NCCL from its pip wheel, without a GPU: its version, and communicator ids that are fresh
    /// each time (a reused id would join an old job). Opening a communicator needs GPUs.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: wheelSite + "/nvidia/nccl/lib") || ProcessInfo.processInfo.environment["CI"] != nil,
                   "needs .cuda-site (scripts/test.sh installs nvidia-nccl-cu12 there)"))
    func ncclLoadsAndMakesFreshIds() throws {
        let nccl = try NCCLLibrary(environment: ["NANODECODER_CUDA_PATH": Self.wheelSite])
        #expect(nccl.versionCode >= 21_000, "NCCL \(nccl.version): data parallelism needs 2.10 or newer")
        #expect(nccl.version.hasPrefix("2."))
        let a = try nccl.uniqueId(), b = try nccl.uniqueId()
        #expect(a.bytes.count == 128 && a.bytes.contains { $0 != 0 })
        #expect(a != b, "two ids are equal")
        #expect(throws: NCCLError.self) { try NCCLUniqueId(bytes: [1, 2, 3]) }
        // Rank 0's id is what every rank gets; the others' buffers are overwritten by the broadcast.
        var seen: [UInt8] = []
        let received = try NCCLUniqueId.agreed(rank: 1, library: nccl) { bytes in
            #expect(bytes == [UInt8](repeating: 0, count: 128))
            bytes = a.bytes
            seen = bytes
        }
        #expect(received == a && seen == a.bytes)
        let made = try NCCLUniqueId.agreed(rank: 0, library: nccl) { bytes in #expect(bytes.contains { $0 != 0 }) }
        #expect(made != a)
    }
}
