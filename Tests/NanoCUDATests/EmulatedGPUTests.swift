import Foundation
import Testing

/// The real CUDA backend on an emulated GPU (Tests/CUDAEmulator): a fake libcuda.so.1 whose
/// "device" memory is host memory and whose kernels are our CUDA C++ sources compiled for the CPU
/// with an emulation of threads, blocks, barriers and warp shuffles, plus a fake cuBLASLt. The
/// `nanodecoder` binary runs unchanged against them, so everything between the engine and the
/// driver is exercised without a GPU: kernel arithmetic and indexing, argument packing, grids,
/// shared memory, the caching allocator, streams, CUDA-graph capture and replay, cuBLASLt calls.
/// What it cannot show: real concurrency between GPU threads beyond the emulator's schedules,
/// timing, and the real driver's and cuBLASLt's behaviour.
private let emulatorRepoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
/// NVRTC (to make the CUBINs the fake driver matches units by) and a C++ compiler for the emulator.
private let emulatorCanRun = FileManager.default.fileExists(atPath: emulatorRepoRoot + "/.cuda-site/nvidia/cuda_nvrtc/lib")
    && (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/clang++") }

@Suite(.serialized, .enabled(if: emulatorCanRun || ProcessInfo.processInfo.environment["CI"] != nil,
                             "needs clang++, python3 and .cuda-site (scripts/test.sh installs NVRTC there)"))
struct EmulatedGPUTests {
    static let repoRoot = emulatorRepoRoot
    static let binary = repoRoot + "/.build/debug/nanodecoder"

    /// The emulated GPU, built once per test process.
    static let emulator: Result<String, Error> = Result {
        let out = NSTemporaryDirectory() + "nanodecoder-emu-\(getpid())"
        let r = try run("/bin/bash", [repoRoot + "/Tests/CUDAEmulator/build.sh", out, binary], environment: [:])
        guard r.status == 0 else { throw EmulatorError(message: "building the emulated GPU failed:\n\(r.output)") }
        return out
    }

    struct EmulatorError: Error, CustomStringConvertible { var message: String; var description: String { message } }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs the binary against the emulated GPU (`schedule`: the emulator's thread order).
    func nanodecoder(_ arguments: [String], schedule: String = "inorder") throws -> (status: Int32, output: String) {
        let out = try Self.emulator.get()
        return try Self.run(Self.binary, arguments, environment: [
            "NANODECODER_CUDA_PATH": out + ":" + Self.repoRoot + "/.cuda-site",
            "NANODECODER_EMU_KERNELS": out + "/kernels",
            "NANODECODER_EMU_SCHEDULE": schedule,
            "NANODECODER_THREADS": "1",
        ])
    }

    /// The emulator itself: its barriers, shuffles, conversions and misuse detection, and real
    /// kernels against double-precision references (Tests/CUDAEmulator/emu_selftest.cpp).
    @Test func theEmulatorPassesItsOwnChecks() throws {
        let out = try Self.emulator.get()
        let here = Self.repoRoot + "/Tests/CUDAEmulator"
        let build = try Self.run("/bin/bash", ["-c", "python3 '\(here)/build_kernels.py' '\(here)/selftest_kernels' '\(out)/selftest' && "
                                               + "clang++ -std=c++17 -O1 -Wno-deprecated-declarations '\(here)/emu_selftest.cpp' -ldl -o '\(out)/emu_selftest'"],
                                 environment: [:])
        #expect(build.status == 0, "\(build.output)")
        for schedule in ["inorder", "shuffle"] {
            let r = try Self.run(out + "/emu_selftest", [out + "/kernels", out + "/selftest"], environment: ["NANODECODER_EMU_SCHEDULE": schedule])
            #expect(r.status == 0 && r.output.contains("checks passed"), "\(schedule): \(r.output)")
        }
    }

    @Test func everyEngineOpAgreesWithTheCPUBackend() throws {
        let r = try nanodecoder(["cuda", "conformance"])
        // "N of M cases agree with the CPU backend"
        let words = r.output.split(separator: "\n").last { $0.contains("cases agree") }?.split(separator: " ") ?? []
        #expect(r.status == 0 && words.count > 3 && words[0] == words[2] && (Int(words[2]) ?? 0) >= 40, "\(r.output)")
        #expect(r.output.contains("Emulated GPU"), "\(r.output)")
        // Threads in shuffled order between barriers: a kernel that races shows it here.
        let shuffled = try nanodecoder(["cuda", "conformance"], schedule: "shuffle")
        #expect(shuffled.status == 0, "\(shuffled.output)")
        // TF32 GEMMs take the same path with another compute type.
        let tf32 = try nanodecoder(["cuda", "conformance", "--tf32", "--filter", "matmul"])
        #expect(tf32.status == 0, "\(tf32.output)")
    }

    @Test func theHandWrittenGPTKernelsPassTheirSelfTest() throws {
        let r = try nanodecoder(["cuda", "selftest"])
        #expect(r.status == 0, "\(r.output)")
    }

    /// Training on the emulated GPU gives the CPU's losses, eagerly and replaying a CUDA graph
    /// (compile: true: capture on a stream of its own into an allocator pool, then cuGraphLaunch).
    /// Two micro-steps, so the recorded backward is seeded with 0.5, which the cross-entropy
    /// kernel must read on the device.
    @Test func trainingOnTheGPUTracksTheCPUAndGraphsReplayEagerSteps() throws {
        let work = NSTemporaryDirectory() + "emu-train-\(UUID().uuidString)"
        let data = work + "/data"
        let prep = try nanodecoder(["prepare", "--input", Self.repoRoot + "/../shared/data/tinyshakespeare.txt", "--out", data, "--tokenizer", "char"])
        #expect(prep.status == 0, "\(prep.output)")
        /// (train_loss, grad_norm) by step. The norm matters: Adam hides a uniformly scaled gradient from the losses.
        func train(_ name: String, _ extra: [String]) throws -> [Int: (loss: Double, norm: Double)] {
            let r = try nanodecoder(["train", "--overwrite", "--set", "data.dataset=\(data)", "--set", "output.out_dir=\(work)/runs",
                                     "--set", "output.name=\(name)", "--set", "model.n_layer=2", "--set", "model.n_head=2",
                                     "--set", "model.n_embd=32", "--set", "model.block_size=32", "--set", "model.dropout=0",
                                     "--set", "training.batch_size=4", "--set", "training.gradient_accumulation_steps=2", "--set", "training.max_iters=8", "--set", "training.eval_interval=4",
                                     "--set", "training.eval_iters=1", "--set", "tracking.plots=false", "--set", "tracking.sample_tokens=0",
                                     "--set", "tracking.tensorboard=false"] + extra)
            #expect(r.status == 0, "\(name): \(r.output)")
            var losses: [Int: (loss: Double, norm: Double)] = [:]
            let text = (try? String(contentsOfFile: "\(work)/runs/\(name)/metrics.jsonl", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let step = o["step"] as? Int, let loss = o["train_loss"] as? Double, let norm = o["grad_norm"] as? Double else { continue }
                losses[step] = (loss, norm)
            }
            if name == "graph" { #expect(r.output.contains("compile: recorded a CUDA graph of"), "\(r.output)") }
            return losses
        }
        let cpu = try train("cpu", ["--device", "cpu"])
        let gpu = try train("gpu", ["--device", "cuda"])
        let graph = try train("graph", ["--device", "cuda", "--set", "training.compile=true"])
        #expect(cpu.count == 8 && gpu.count == 8 && graph.count == 8, "\(cpu) \(gpu) \(graph)")
        for step in 1...8 {
            guard let c = cpu[step], let g = gpu[step], let r = graph[step] else { continue }
            #expect(abs(g.loss - c.loss) <= 1e-4 * c.loss && abs(g.norm - c.norm) <= 1e-3 * c.norm, "step \(step): cuda \(g), cpu \(c)")
            #expect(abs(r.loss - g.loss) <= 1e-6 * g.loss && abs(r.norm - g.norm) <= 1e-5 * g.norm, "step \(step): graph \(r), eager \(g)")
        }
    }
}
