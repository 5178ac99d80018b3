import Foundation
import NanoTestSupport
import Testing

/// The real CUDA backend on an emulated GPU (Tests/CUDAEmulator): a fake libcuda.so.1 whose
/// "device" memory is host memory and whose kernels are our CUDA C++ sources compiled for the CPU
/// with an emulation of threads, blocks, barriers and warp shuffles, plus a fake cuBLASLt. The
/// `nanodecoder` binary runs unchanged against them, so everything between the engine and the
/// driver is exercised without a GPU: kernel arithmetic and indexing, argument packing, grids,
/// shared memory, the caching allocator, streams, CUDA-graph capture and replay, cuBLASLt calls.
/// What it cannot show: real concurrency between GPU threads beyond the emulator's schedules,
/// timing, and the real driver's and cuBLASLt's behaviour.
/// NVRTC (to make the CUBINs the fake driver matches units by) and a C++ compiler for the emulator.
private let emulatorCanRun = FileManager.default.fileExists(atPath: repositoryRoot + "/.cuda-site/nvidia/cuda_nvrtc/lib")
    && (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/clang++") }

@Suite(.serialized, .enabled(if: emulatorCanRun || ProcessInfo.processInfo.environment["CI"] != nil,
                             "needs clang++, python3 and .cuda-site (scripts/test.sh installs NVRTC there)"))
struct EmulatedGPUTests {
    static let repoRoot = repositoryRoot
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
        let r = try runProcess(executable, arguments, environment: environment)
        return (r.status, r.output)
    }

    /// Runs the binary against the emulated GPU (`schedule`: the emulator's thread order).
    func nanodecoder(_ arguments: [String], schedule: String = "inorder", environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let out = try Self.emulator.get()
        return try Self.run(Self.binary, arguments, environment: [
            "NANODECODER_CUDA_PATH": out + ":" + Self.repoRoot + "/.cuda-site",
            "NANODECODER_EMU_KERNELS": out + "/kernels",
            "NANODECODER_EMU_SCHEDULE": schedule,
            "NANODECODER_THREADS": "1",
        ].merging(environment) { $1 })
    }

    /// A step that does not fit in device memory (the fake driver limited to 60 MB) ends the run
    /// with the allocator's account and the settings that shrink the step, not a crash.
    @Test func runningOutOfDeviceMemoryNamesTheBatchSize() throws {
        let data = try Self.dataset.get(), work = NSTemporaryDirectory() + "emu-oom-\(UUID().uuidString)"
        let r = try nanodecoder(["train", "--overwrite", "--device", "cuda", "--set", "data.dataset=\(data)", "--set", "output.out_dir=\(work)",
                                 "--set", "model.n_layer=2", "--set", "model.n_head=2", "--set", "model.n_embd=64", "--set", "model.block_size=64",
                                 "--set", "training.batch_size=64", "--set", "training.max_iters=2", "--set", "training.eval_interval=2",
                                 "--set", "training.eval_iters=1", "--set", "tracking.plots=false", "--set", "tracking.sample_tokens=0"],
                                environment: ["NANODECODER_EMU_MEMORY_MB": "60"])
        #expect(r.status != 0 && r.output.contains("is out of memory allocating") && r.output.contains("held by live tensors")
                && r.output.contains("lower training.batch_size"), "\(r.output)")
    }

    /// The emulator itself: its barriers, shuffles, conversions and misuse detection, and real
    /// kernels against double-precision references (Tests/CUDAEmulator/emu_selftest.cpp); its
    /// NCCL and stream captures (nccl_selftest.cpp).
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
        // The stand-in NCCL across 3 processes, and stream-capture forks and joins in the driver.
        let nccl = try Self.run("/bin/bash", ["-c", "clang++ -std=c++17 -O1 '\(here)/nccl_selftest.cpp' -ldl -o '\(out)/nccl_selftest' && "
                                              + "'\(out)/nccl_selftest' '\(out)/lib/libcuda.so.1' '\(out)/lib/libnccl.so.2' 3"], environment: [:])
        #expect(nccl.status == 0 && nccl.output.contains("checks passed"), "\(nccl.output)")
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

    /// A char-level Shakespeare dataset, prepared once per process.
    static let dataset: Result<String, Error> = Result {
        let data = NSTemporaryDirectory() + "emu-data-\(getpid())"
        let r = try run(binary, ["prepare", "--input", repoRoot + "/../shared/data/tinyshakespeare.txt", "--out", data, "--tokenizer", "char"],
                        environment: [:])
        guard r.status == 0 else { throw EmulatorError(message: "prepare failed: \(r.output)") }
        return data
    }

    /// A step's train_loss and grad_norm. The norm matters: Adam hides a uniformly scaled gradient from the losses.
    typealias Step = (loss: Double, norm: Double)

    /// Trains a small model for 8 steps (2 micro-steps each) in `work`/runs/`name`; `ranks` > 1 runs under mpirun.
    func train(_ work: String, _ name: String, _ extra: [String], ranks: Int = 1, config: [String] = []) throws -> (steps: [Int: Step], output: String) {
        let data = try Self.dataset.get()
        let arguments = ["train", "--overwrite"] + config + ["--set", "data.dataset=\(data)", "--set", "output.out_dir=\(work)/runs",
                         "--set", "output.name=\(name)", "--set", "model.n_layer=2", "--set", "model.n_head=2",
                         "--set", "model.n_embd=32", "--set", "model.block_size=32", "--set", "model.dropout=0",
                         "--set", "training.batch_size=4", "--set", "training.gradient_accumulation_steps=2", "--set", "training.max_iters=8",
                         "--set", "training.eval_interval=4", "--set", "training.eval_iters=1", "--set", "tracking.plots=false",
                         "--set", "tracking.sample_tokens=0", "--set", "tracking.tensorboard=false"] + extra
        let r: (status: Int32, output: String)
        if ranks > 1 {
            let out = try Self.emulator.get()
            r = try Self.run(Self.mpirun!, ["--allow-run-as-root", "--oversubscribe", "-np", String(ranks), "-x", "NANODECODER_CUDA_PATH",
                                            "-x", "NANODECODER_EMU_KERNELS", Self.binary] + arguments,
                             environment: ["NANODECODER_CUDA_PATH": out + ":" + Self.repoRoot + "/.cuda-site",
                                           "NANODECODER_EMU_KERNELS": out + "/kernels", "NANODECODER_THREADS": "1", "OMP_NUM_THREADS": "1"])
        } else {
            r = try nanodecoder(arguments)
        }
        #expect(r.status == 0, "\(name): \(r.output)")
        var steps: [Int: Step] = [:]
        let text = (try? String(contentsOfFile: "\(work)/runs/\(name)/metrics.jsonl", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = o["step"] as? Int, let loss = o["train_loss"] as? Double, let norm = o["grad_norm"] as? Double else { continue }
            steps[step] = (loss, norm)
        }
        #expect(steps.count == 8, "\(name): \(steps.count) steps logged\n\(r.output)")
        return (steps, r.output)
    }

    /// Every logged step of `a` within `loss` and `norm` (relative) of `b`'s.
    func expectClose(_ a: [Int: Step], _ b: [Int: Step], loss: Double, norm: Double, _ what: String) {
        for (step, x) in a.sorted(by: { $0.key < $1.key }) {
            guard let y = b[step] else { Issue.record("\(what): step \(step) missing"); continue }
            #expect(abs(x.loss - y.loss) <= loss * y.loss && abs(x.norm - y.norm) <= norm * y.norm, "\(what), step \(step): \(x) vs \(y)")
        }
    }

    static let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Training on the emulated GPU gives the CPU's losses, eagerly and replaying a CUDA graph
    /// (compile: true: capture on a stream of its own into an allocator pool, then cuGraphLaunch).
    /// Two micro-steps, so the recorded backward is seeded with 0.5, which the cross-entropy
    /// kernel must read on the device. Greedy sampling from the GPU run's checkpoint gives the
    /// same text on both devices.
    @Test func trainingOnTheGPUTracksTheCPUAndGraphsReplayEagerSteps() throws {
        let work = NSTemporaryDirectory() + "emu-train-\(UUID().uuidString)"
        let cpu = try train(work, "cpu", ["--device", "cpu"]).steps
        let gpu = try train(work, "gpu", ["--device", "cuda"]).steps
        let graph = try train(work, "graph", ["--device", "cuda", "--set", "training.compile=true"])
        #expect(graph.output.contains("compile: recorded a CUDA graph of") && graph.output.contains("clipping and AdamW"), "\(graph.output)")
        #expect(graph.output.contains("uploads through 2 × 16 MB pinned"), "batches are not staged in pinned memory: \(graph.output)")
        expectClose(gpu, cpu, loss: 1e-4, norm: 1e-3, "cuda vs cpu")
        expectClose(graph.steps, gpu, loss: 1e-6, norm: 1e-5, "CUDA graph vs eager")
        var texts: [String] = []
        for device in ["cpu", "cuda"] {
            let r = try nanodecoder(["sample", "--device", device, "--checkpoint", work + "/runs/gpu/checkpoint", "--temperature", "0",
                                     "--max-new-tokens", "40", "--prompt", "ROMEO:"])
            #expect(r.status == 0, "\(r.output)")
            texts.append(r.output.split(separator: "\n").filter { !$0.hasPrefix("device:") }.joined(separator: "\n"))
        }
        #expect(texts[0] == texts[1] && texts[0].contains("ROMEO:"), "greedy samples differ:\n\(texts[0])\n---\n\(texts[1])")
    }

    /// bf16 (cuBLASLt bf16 operands; attention on the tensor-core kernels where the head size is
    /// 64) and fp16 (with loss scaling) on the emulated GPU, and the MoE
    /// model (routing read back to the host, grouped expert GEMMs), against the CPU.
    @Test func mixedPrecisionAndMoEOnTheGPUTrackTheCPU() throws {
        let work = NSTemporaryDirectory() + "emu-mixed-\(UUID().uuidString)"
        let bf16 = ["--set", "training.mixed_precision=bf16"]
        expectClose(try train(work, "bf16-gpu", ["--device", "cuda"] + bf16).steps, try train(work, "bf16-cpu", ["--device", "cpu"] + bf16).steps,
                    loss: 1e-3, norm: 1e-2, "bf16 cuda vs cpu")
        // Head size 64: attention's products on the tensor-core kernels (bf16 operands, mma.sync).
        let tensorCores = ["--set", "training.mixed_precision=bf16", "--set", "model.n_embd=64", "--set", "model.n_head=1"]
        expectClose(try train(work, "tc-gpu", ["--device", "cuda"] + tensorCores).steps, try train(work, "tc-cpu", ["--device", "cpu"] + tensorCores).steps,
                    loss: 1e-3, norm: 1e-2, "bf16 with tensor-core attention, cuda vs cpu")
        let fp32 = try train(work, "fp32-gpu", ["--device", "cuda"]).steps
        let fp16 = try train(work, "fp16-gpu", ["--device", "cuda", "--set", "training.mixed_precision=fp16"])
        #expect(fp16.output.contains("dynamic loss scaling"), "\(fp16.output)")
        expectClose(fp16.steps, fp32, loss: 1e-2, norm: 5e-2, "fp16 vs fp32 on cuda")
        let moe = ["--config", Self.repoRoot + "/configs/shakespeare-char-moe.yaml"]
        expectClose(try train(work, "moe-gpu", ["--device", "cuda"], config: moe).steps, try train(work, "moe-cpu", ["--device", "cpu"], config: moe).steps,
                    loss: 1e-3, norm: 1e-2, "MoE cuda vs cpu")
    }

    /// Two ranks on emulated GPUs against one CPU process, both ways gradients travel: NCCL
    /// (the emulator's stand-in libnccl: the real NCCLCommunicator, its stream forked from and
    /// joined to the kernel stream by events), eagerly, recorded into the CUDA graph with the
    /// rest of the step, and under ZeRO-1; and buckets staged through host memory over MPI. NCCL's all-reduce is
    /// checked on its own by `cuda nccl --all-reduce`.
    @Test(.enabled(if: EmulatedGPUTests.mpirun != nil || ProcessInfo.processInfo.environment["CI"] != nil))
    func twoRanksOnGPUsMatchOneCPURank() throws {
        let work = NSTemporaryDirectory() + "emu-dp-\(UUID().uuidString)"
        let one = try train(work, "one", ["--device", "cpu"]).steps
        let nccl = try train(work, "nccl", ["--device", "cuda", "--set", "device.collective=nccl"], ranks: 2)
        #expect(nccl.output.contains("data parallel: 2 ranks") && nccl.output.contains("by NCCL"), "\(nccl.output)")
        expectClose(nccl.steps, one, loss: 1e-4, norm: 1e-3, "2 ranks on cuda (NCCL) vs 1 on cpu")
        let graph = try train(work, "nccl-graph", ["--device", "cuda", "--set", "device.collective=nccl", "--set", "training.compile=true"], ranks: 2)
        #expect(graph.output.contains("(forward, backward, all-reduce, clipping and AdamW)"), "\(graph.output)")
        expectClose(graph.steps, nccl.steps, loss: 1e-6, norm: 1e-5, "NCCL in a CUDA graph vs eager NCCL")
        let zero = try train(work, "nccl-zero", ["--device", "cuda", "--set", "device.collective=nccl", "--set", "training.zero=1"], ranks: 2)
        #expect(zero.output.contains("ZeRO-1") && zero.output.contains("reduced and gathered by NCCL"), "\(zero.output)")
        expectClose(zero.steps, one, loss: 1e-4, norm: 1e-3, "ZeRO-1 on 2 ranks on cuda (NCCL reduce-scatter, all-gather) vs 1 on cpu")
        let staged = try train(work, "staged", ["--device", "cuda", "--set", "device.collective=host"], ranks: 2)
        #expect(staged.output.contains("staged through host memory"), "\(staged.output)")
        expectClose(staged.steps, one, loss: 1e-4, norm: 1e-3, "2 ranks on cuda (host-staged) vs 1 on cpu")
        let out = try Self.emulator.get()
        let check = try Self.run(Self.mpirun!, ["--allow-run-as-root", "--oversubscribe", "-np", "2", "-x", "NANODECODER_CUDA_PATH",
                                                "-x", "NANODECODER_EMU_KERNELS", Self.binary, "cuda", "nccl", "--all-reduce"],
                                 environment: ["NANODECODER_CUDA_PATH": out + ":" + Self.repoRoot + "/.cuda-site",
                                               "NANODECODER_EMU_KERNELS": out + "/kernels", "NANODECODER_THREADS": "1"])
        #expect(check.status == 0 && check.output.components(separatedBy: "correct").count == 3, "\(check.output)")
    }
}
