import Foundation
import NanoEngine
import NanoTestSupport
@testable import NanoTraining
import Testing

// Data parallelism end to end: the built `nanodecoder` binary under `mpirun -np 2` against one
// process. Needs Open MPI (scripts/test.sh installs it); the binary is built by `swift build`.

private let binary = repositoryRoot + "/.build/debug/nanodecoder"
private let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// Runs a command; returns exit status, combined output and seconds taken.
@discardableResult
private func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                 onStart: ((Process) -> Void)? = nil) throws -> (status: Int32, output: String, seconds: Double) {
    try runProcess(executable, arguments, environment: environment, onStart: onStart)
}

private func mpi(_ ranks: Int, _ arguments: [String], onStart: ((Process) -> Void)? = nil) throws -> (status: Int32, output: String, seconds: Double) {
    try run(mpirun!, ["--allow-run-as-root", "--oversubscribe", "-np", String(ranks), binary] + arguments,
            environment: ["NANODECODER_THREADS": "1", "OMP_NUM_THREADS": "1"], onStart: onStart)
}

private func trainArguments(dataset: String, runs: String, name: String, steps: Int, extra: [String] = []) -> [String] {
    ["train", "--overwrite", "--set", "data.dataset=\(dataset)", "--set", "output.out_dir=\(runs)", "--set", "output.name=\(name)",
     "--set", "model.n_layer=1", "--set", "model.n_head=2", "--set", "model.n_embd=16", "--set", "model.block_size=8",
     "--set", "training.batch_size=8", "--set", "training.max_iters=\(steps)", "--set", "training.eval_interval=10",
     "--set", "training.eval_iters=2", "--set", "lr_schedule.warmup_iters=2", "--set", "lr_schedule.lr_decay_iters=20",
     "--set", "tracking.plots=false", "--set", "tracking.sample_tokens=0", "--set", "tracking.tensorboard=false"] + extra
}

/// train_loss and grad_norm by step from a run's metrics.jsonl.
private func metrics(_ runDir: String) throws -> [Int: (loss: Double, norm: Double)] {
    let text = try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8)
    var out: [Int: (loss: Double, norm: Double)] = [:]
    for line in text.split(separator: "\n") {
        guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let step = o["step"] as? Int,
              let loss = o["train_loss"] as? Double, let norm = o["grad_norm"] as? Double else { continue }
        out[step] = (loss, norm)
    }
    return out
}

/// train_loss by step.
private func losses(_ runDir: String) throws -> [Int: Double] { try metrics(runDir).mapValues(\.loss) }

private func expectClose(_ a: [Int: Double], _ b: [Int: Double], steps: ClosedRange<Int>, _ what: String) {
    for step in steps {
        guard let x = a[step], let y = b[step] else { Issue.record("\(what): step \(step) missing"); continue }
        #expect(abs(x - y) <= 1e-5 * abs(y), "\(what): step \(step): \(x) vs \(y)")
    }
}

private func weights(_ dir: String) throws -> [String: [Float]] {
    try SafeTensors.read(dir + "/model.safetensors").tensors.mapValues { try $0.toArray() }
}

@Suite(.serialized, .enabled(if: mpirun != nil || ProcessInfo.processInfo.environment["CI"] != nil,
                             "needs Open MPI's mpirun (apt-get install -y openmpi-bin libopenmpi-dev)"))
struct DataParallelTests {
    let data: String
    let runs = NSTemporaryDirectory() + "dp-\(UUID().uuidString)"

    init() throws {
        data = try makeDataset(vocab: 11, trainTokens: 4000, valTokens: 600)
        #expect(mpirun != nil, "mpirun is missing: scripts/test.sh installs openmpi-bin")
        #expect(FileManager.default.isExecutableFile(atPath: binary), "build the CLI first (swift build)")
    }

    @Test func twoRanksMatchOneRankAndZeROMatchesPlainDataParallel() throws {
        let one = try run(binary, trainArguments(dataset: data, runs: runs, name: "one", steps: 20))
        #expect(one.status == 0, "\(one.output)")
        let two = try mpi(2, trainArguments(dataset: data, runs: runs, name: "two", steps: 20))
        #expect(two.status == 0, "\(two.output)")
        #expect(two.output.contains("data parallel: 2 ranks, 4 of 8 rows each"))
        let zero = try mpi(2, trainArguments(dataset: data, runs: runs, name: "zero", steps: 20, extra: ["--set", "training.zero=1"]))
        #expect(zero.status == 0, "\(zero.output)")
        #expect(zero.output.contains("ZeRO-1"))

        let reference = try losses(runs + "/one")
        expectClose(try losses(runs + "/two"), reference, steps: 1...20, "2 ranks vs 1")
        expectClose(try losses(runs + "/zero"), try losses(runs + "/two"), steps: 1...20, "ZeRO-1 vs plain")
        let w1 = try weights(runs + "/one/checkpoint"), w2 = try weights(runs + "/two/checkpoint"), wz = try weights(runs + "/zero/checkpoint")
        // Relative L2 over all weights, plus the largest absolute difference: Adam turns
        // rounding-level gradient differences of near-zero entries into differences of the
        // order of an update, so elementwise relative error is not meaningful for them.
        for (label, other) in [("2 ranks", w2), ("ZeRO-1", wz)] {
            var diff = 0.0, norm = 0.0, worst: Float = 0
            for (name, a) in w1 {
                let b = try #require(other[name], "\(label): \(name) missing")
                for (x, y) in zip(a, b) { diff += Double((x - y) * (x - y)); norm += Double(x * x); worst = max(worst, abs(x - y)) }
            }
            #expect((diff / norm).squareRoot() <= 1e-5, "\(label): relative L2 difference \((diff / norm).squareRoot())")
            #expect(worst <= 1e-5, "\(label): largest difference \(worst)")
        }
        // Optimizer state is saved whole by name, so ZeRO checkpoints load anywhere.
        let moments = try SafeTensors.read(runs + "/zero/checkpoint/optimizer.safetensors").tensors
        #expect(moments.count == 2 * w1.count)
    }

    /// Ranks on a device (a CPU backend standing in for cuda:0, NANODECODER_STAND_IN_DEVICE=1),
    /// both ways gradients can travel: buckets in device memory reduced by the device collective
    /// (the stand-in's MPI in place of NCCL, `device.collective: auto`), eagerly and recorded as a
    /// graph, and buckets staged through host memory (`host`); ZeRO-1 with its shards in device
    /// memory. All match one CPU process. ZeRO-1 with host staging is refused with the key named.
    @Test func twoRanksOnADeviceMatchOneCPURank() throws {
        let one = try run(binary, trainArguments(dataset: data, runs: runs, name: "cpu-one", steps: 10))
        #expect(one.status == 0, "\(one.output)")
        func onDevice(_ name: String, steps: Int = 10, _ extra: [String]) throws -> (status: Int32, output: String, seconds: Double) {
            try run(mpirun!, ["--allow-run-as-root", "--oversubscribe", "-np", "2", "-x", "NANODECODER_STAND_IN_DEVICE", binary]
                    + trainArguments(dataset: data, runs: runs, name: name, steps: steps, extra: ["--device", "cuda"] + extra),
                    environment: ["NANODECODER_THREADS": "1", "OMP_NUM_THREADS": "1", "NANODECODER_STAND_IN_DEVICE": "1"])
        }
        let inDevice = try onDevice("device-two", [])
        #expect(inDevice.status == 0, "\(inDevice.output)")
        #expect(inDevice.output.contains("cuda:0 stood in for by cpu") && inDevice.output.contains("in cuda:0 memory")
                && inDevice.output.contains("stand-in for NCCL"), "\(inDevice.output)")
        expectClose(try losses(runs + "/device-two"), try losses(runs + "/cpu-one"), steps: 1...10, "2 ranks on cuda:0 (device buckets) vs 1 on the CPU")
        // compile: true records the whole data-parallel step, the collective's reductions included
        // (the stand-in tapes its MPI calls, as NCCL's join a CUDA graph): the eager run's losses
        // and gradient norms (a replay that skipped the reductions would halve the norms).
        let graph = try onDevice("device-graph", ["--set", "training.compile=true"])
        #expect(graph.status == 0 && graph.output.contains("(forward, backward, all-reduce, clipping and AdamW)"), "\(graph.output)")
        let eager = try metrics(runs + "/device-two"), replayed = try metrics(runs + "/device-graph")
        for step in 1...10 {
            #expect(replayed[step]?.loss == eager[step]?.loss && replayed[step]?.norm == eager[step]?.norm,
                    "graph vs eager, step \(step): \(String(describing: replayed[step])) vs \(String(describing: eager[step]))")
        }
        let staged = try onDevice("device-staged", ["--set", "device.collective=host", "--set", "training.compile=true"])
        #expect(staged.status == 0, "\(staged.output)")
        #expect(staged.output.contains("staged through host memory") && !staged.output.contains("stand-in for NCCL")
                && staged.output.contains("compile: running eagerly: data parallelism reduces gradients with MPI in host memory"), "\(staged.output)")
        expectClose(try losses(runs + "/device-staged"), try losses(runs + "/cpu-one"), steps: 1...10, "2 ranks on cuda:0 (host buckets) vs 1 on the CPU")
        // ZeRO-1 in device memory: the collective reduce-scatters gradients and all-gathers parameters.
        let zero = try onDevice("device-zero", ["--set", "training.zero=1"])
        #expect(zero.status == 0 && zero.output.contains("ZeRO-1") && zero.output.contains("reduced and gathered by MPI on cuda:0"), "\(zero.output)")
        expectClose(try losses(runs + "/device-zero"), try losses(runs + "/cpu-one"), steps: 1...10, "ZeRO-1 on 2 ranks on cuda:0 vs 1 on the CPU")
        let stagedZero = try onDevice("device-staged-zero", steps: 2, ["--set", "training.zero=1", "--set", "device.collective=host"])
        #expect(stagedZero.status != 0 && stagedZero.output.contains("training.zero") && stagedZero.output.contains("device.collective: nccl"),
                "\(stagedZero.output)")
        let typo = try onDevice("device-typo", steps: 2, ["--set", "device.collective=nccl2"])
        #expect(typo.status != 0 && typo.output.contains("device.collective") && typo.output.contains("expected auto, nccl or host"), "\(typo.output)")
    }

    /// NCCL's communicator id is made on rank 0 and reaches every rank over MPI (no GPU needed):
    /// both ranks print the same id, and another job gets another one.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: repositoryRoot + "/.cuda-site/nvidia/nccl/lib")
                   || ProcessInfo.processInfo.environment["CI"] != nil, "needs NCCL's wheel in .cuda-site (scripts/test.sh installs it)"))
    func ncclIdReachesEveryRankOverMPI() throws {
        func ids() throws -> [String] {
            let r = try run(mpirun!, ["--allow-run-as-root", "--oversubscribe", "-np", "2", "-x", "NANODECODER_CUDA_PATH", binary, "cuda", "nccl"],
                            environment: ["NANODECODER_CUDA_PATH": repositoryRoot + "/.cuda-site"])
            #expect(r.status == 0, "\(r.output)")
            let lines = r.output.split(separator: "\n").filter { $0.contains("communicator id") }
            #expect(lines.count == 2 && lines.contains { $0.hasPrefix("rank 0 of 2") } && lines.contains { $0.hasPrefix("rank 1 of 2") }, "\(r.output)")
            return lines.compactMap { $0.split(separator: " ").last.map(String.init) }
        }
        let first = try ids(), second = try ids()
        #expect(first.count == 2 && first[0] == first[1], "ranks disagree: \(first)")
        #expect(second.count == 2 && second[0] == second[1] && second[0] != first[0], "a second job should get a new id: \(first) then \(second)")
    }

    @Test func checkpointOfTwoRanksResumesOnOne() throws {
        let straight = try run(binary, trainArguments(dataset: data, runs: runs, name: "straight", steps: 20))
        #expect(straight.status == 0, "\(straight.output)")
        let first = try mpi(2, trainArguments(dataset: data, runs: runs, name: "resumed", steps: 10))
        #expect(first.status == 0, "\(first.output)")
        var args = trainArguments(dataset: data, runs: runs, name: "resumed", steps: 20)
        args.removeFirst(2)   // no --overwrite
        let second = try run(binary, ["train", "--resume"] + args)
        #expect(second.status == 0, "\(second.output)")
        #expect(second.output.contains("resumed from"))
        expectClose(try losses(runs + "/resumed"), try losses(runs + "/straight"), steps: 1...20, "2 ranks then 1 vs straight")
    }

    @Test func badSetupsFailClearlyOnEveryRank() throws {
        let odd = try mpi(2, trainArguments(dataset: data, runs: runs, name: "odd", steps: 2, extra: ["--set", "training.batch_size=3"]))
        #expect(odd.status != 0)
        #expect(odd.output.contains("batch_size 3 is the global batch and must split evenly across 2 ranks"), "\(odd.output)")
        // MPMD launch: rank 1 gets another learning rate.
        let a = trainArguments(dataset: data, runs: runs, name: "mismatch", steps: 2)
        let b = a + ["--set", "lr_schedule.learning_rate=0.002"]
        let mismatch = try run(mpirun!, ["--allow-run-as-root", "--oversubscribe", "-np", "1", binary] + a + [":", "-np", "1", binary] + b,
                               environment: ["NANODECODER_THREADS": "1"])
        #expect(mismatch.status != 0)
        #expect(mismatch.output.contains("rank(s) 1 have a different effective config or data files than rank 0"), "\(mismatch.output)")
    }

    @Test func stopFileStopsEveryRankAtTheSameStepWithACheckpoint() throws {
        let runDir = runs + "/stopped"
        let result = try mpi(2, trainArguments(dataset: data, runs: runs, name: "stopped", steps: 100_000)) { _ in
            Thread {
                let deadline = Date().addingTimeInterval(60)
                func lines() -> Int { ((try? String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count }
                while Date() < deadline && lines() < 4 { usleep(50_000) }
                _ = FileManager.default.createFile(atPath: runDir + "/STOP", contents: nil)
            }.start()
        }
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("stopped at step"), "\(result.output)")
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDir + "/checkpoint/state.json"))) as? [String: Any]
        let step = state?["step"] as? Int ?? 0
        #expect(step > 0 && result.output.contains("stopped at step \(step);"), "\(result.output)")
    }

    @Test func killingOneRankEndsTheJobWithAnError() throws {
        let runDir = runs + "/killed"
        let result = try mpi(2, trainArguments(dataset: data, runs: runs, name: "killed", steps: 100_000)) { job in
            let pid = job.processIdentifier
            Thread {
                // Once training is under way (metrics written), kill rank 1 (a child of mpirun).
                let deadline = Date().addingTimeInterval(60)
                while Date() < deadline && !FileManager.default.fileExists(atPath: runDir + "/metrics.jsonl") { usleep(100_000) }
                usleep(500_000)
                let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
                if let victim = children.split(separator: " ").compactMap({ Int32($0) }).last { kill(victim, SIGKILL) }
            }.start()
        }
        #expect(result.status != 0, "\(result.output)")
        #expect(result.seconds < 90, "took \(result.seconds) s")
        #expect(result.output.lowercased().contains("signal 9") || result.output.lowercased().contains("killed"), "\(result.output)")
        // The last checkpoint is still a valid one.
        #expect(try SafeTensors.read(runDir + "/checkpoint/model.safetensors").tensors.count > 0)
    }
}
