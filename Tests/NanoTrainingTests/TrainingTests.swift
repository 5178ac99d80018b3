import Foundation
import NanoCPU
import NanoData
import NanoEngine
import NanoModels
import NanoTracking
@testable import NanoTraining
import Testing

/// A throwaway dataset folder of random tokens.
func makeDataset(vocab: Int = 11, trainTokens: Int = 3000, valTokens: Int = 600) throws -> String {
    let dir = NSTemporaryDirectory() + "nanodecoder-test-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    // Patterned text (a noisy counter) so a model can learn something.
    func tokens(_ n: Int, seed: UInt64) -> [UInt16] {
        let noise = (try? Tensor.uniform([n], generator: Generator(seed: seed)).toArray()) ?? []
        return (0..<n).map { i in UInt16(noise[i] < 0.1 ? Int(noise[i] * 100) % vocab : i % vocab) }
    }
    for (name, n, seed) in [("train", trainTokens, UInt64(1)), ("val", valTokens, UInt64(2))] {
        let data = tokens(n, seed: seed).withUnsafeBufferPointer { Data(buffer: $0) }
        try data.write(to: URL(fileURLWithPath: "\(dir)/\(name).bin"))
    }
    try DatasetMeta(tokenizer: "char", vocabSize: vocab, dtype: "uint16", vocabulary: (0..<vocab).map { String($0) },
                    tokenizerFile: nil, trainTokens: trainTokens, valTokens: valTokens, source: "test").save(folder: dir)
    return dir
}

func tinyConfig(dataset: String, runs: String) -> TrainConfig {
    var c = TrainConfig()
    c.nLayer = 1; c.nHead = 2; c.nEmbd = 16; c.blockSize = 8; c.batchSize = 4
    c.maxIters = 8; c.evalInterval = 4; c.evalIters = 2; c.warmupIters = 2; c.lrDecayIters = 8; c.logInterval = 100
    c.dataset = dataset; c.outDir = runs; c.name = "t"
    return c
}

/// Trains `config` in runs/name to the end; returns the trainer and the lines it logged.
func trainLogged(_ config: TrainConfig, runs: String, name: String) throws -> (trainer: Trainer, log: [String]) {
    var lines: [String] = []
    let trainer = try Trainer(config: config, runDir: runs + "/" + name)
    trainer.log = { lines.append($0) }
    try trainer.train()
    return (trainer, lines)
}

/// Trains `config` in runDir, stopped after `stopAt` steps as Ctrl-C would stop it, then resumed to
/// the end. Returns the losses of both runs by step and the two trainers.
func trainStoppedAndResumed(_ config: TrainConfig, runDir: String, stopAt: Int) throws -> (losses: [Int: Float], first: Trainer, second: Trainer) {
    let first = try Trainer(config: config, runDir: runDir)
    first.log = { _ in }
    first.onStep = { step, _ in if step == stopAt { first.stop.request() } }
    try first.train()
    let second = try Trainer(config: config, runDir: runDir)
    second.log = { _ in }
    try second.resume()
    try second.train()
    return (first.losses.merging(second.losses) { a, _ in a }, first, second)
}

@Suite(.serialized) struct TrainingTests {
    @Test func resumingGivesBitwiseTheSameLossesAsTrainingStraight() throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.dropout = 0.1   // the dropout stream must resume where it stopped too

        let straight = try Trainer(config: config, runDir: runs + "/straight")
        straight.log = { _ in }
        try straight.train()

        let (resumed, first, second) = try trainStoppedAndResumed(config, runDir: runs + "/resumed", stopAt: 3)
        #expect(first.state.step == 3)
        #expect(resumed.count == 8)
        for step in 0..<8 {
            #expect(straight.losses[step] == resumed[step], "step \(step): \(straight.losses[step] ?? .nan) vs \(resumed[step] ?? .nan)")
        }
        #expect(straight.state.bestValLoss == second.state.bestValLoss)
    }

    @Test func trainingLowersTheLossAndWritesMetricsAndCheckpoints() throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.maxIters = 60; config.evalInterval = 30; config.learningRate = 1e-2; config.lrDecayIters = 60
        let trainer = try Trainer(config: config, runDir: runs + "/t")
        trainer.log = { _ in }
        try trainer.train()
        #expect(trainer.losses[59]! < trainer.losses[0]! - 0.3)
        let lines = try String(contentsOfFile: runs + "/t/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 60 + 3)   // 60 steps, evals at 0, 30, 60
        #expect(FileManager.default.fileExists(atPath: runs + "/t/checkpoint/model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: runs + "/t/best/optimizer.safetensors"))
        let loaded = try Checkpoint.loadModel(from: runs + "/t/checkpoint")
        #expect(loaded.config == trainer.model!.config)
    }

    @Test func checkpointOfAnotherModelConfigIsRejected() throws {
        let dir = NSTemporaryDirectory() + "ckpt-\(UUID().uuidString)"
        try Checkpoint.save(to: dir, model: try DenseGPT(GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16)))
        let other = try DenseGPT(GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 32))
        #expect(throws: FileFormatError.self) { try Checkpoint.loadWeights(into: other, from: dir) }
    }

    @Test func corruptedSafetensorsHeaderIsAClearError() throws {
        let path = NSTemporaryDirectory() + "bad-\(UUID().uuidString).safetensors"
        var data = Data([0xFF, 0xFF, 0, 0, 0, 0, 0, 0])
        data.append(Data("{}".utf8))
        try data.write(to: URL(fileURLWithPath: path))
        do {
            _ = try SafeTensors.read(path)
            Issue.record("expected an error")
        } catch let e as FileFormatError {
            #expect(e.description.contains(path) && e.description.contains("header length"))
        }
        let good = try SafeTensors.encode([("w", try Tensor([1, 2, 3], shape: [3]))])
        try good.prefix(good.count - 4).write(to: URL(fileURLWithPath: path))   // truncated data
        #expect(throws: FileFormatError.self) { try SafeTensors.read(path) }
    }

    @Test func tokenFileWithAPartialTokenIsRejected() throws {
        let dir = try makeDataset()
        try Data([1, 0, 2]).write(to: URL(fileURLWithPath: dir + "/val.bin"))
        do {
            _ = try TokenDataset(folder: dir)
            Issue.record("expected an error")
        } catch let e as DataError {
            #expect(e.description.contains("val.bin") && e.description.contains("whole number"))
        }
    }

    @Test func samplingWithKVCacheGivesTheSameTokensAsWithout() throws {
        let model = try DenseGPT(GPTConfig(vocabSize: 11, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 16), seed: 3)
        var options = SamplingOptions()
        options.maxNewTokens = 30   // past block_size, so the cache is rebuilt on the way
        options.temperature = 1
        options.topK = 0
        options.useKVCache = true
        let cached = try Sampler(model: model).generate(prompt: [1, 2, 3], options: options)
        options.useKVCache = false
        let uncached = try Sampler(model: model).generate(prompt: [1, 2, 3], options: options)
        #expect(cached == uncached)
        #expect(cached.count == 30)
    }
}

@Suite struct ConfigTests {
    func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "cfg-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func unknownKeyNamesFileKeyAndSuggestion() throws {
        let path = try write("training:\n  max_iter: 100\n")
        do {
            _ = try TrainConfig.load(file: path)
            Issue.record("expected an error")
        } catch let e as ConfigError {
            #expect(e.description.contains(path) && e.description.contains("training.max_iter") && e.description.contains("max_iters"))
        }
    }

    @Test func wrongTypesAndImpossibleValuesAreErrors() throws {
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: try write("model:\n  n_layer: four\n")) }
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: try write("model:\n  n_embd: 100\n  n_head: 3\n")) }
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: try write("modle:\n  n_layer: 2\n")) }
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: nil, overrides: ["training.batch_size=0"]) }
    }

    @Test func overridesApplyAndTheEffectiveConfigRoundTrips() throws {
        let c = try TrainConfig.load(file: try write("model:\n  n_layer: 6\nlr_schedule:\n  learning_rate: 0.0006\n"),
                                     overrides: ["training.max_iters=42", "model.dropout=0.2"])
        #expect(c.nLayer == 6 && c.maxIters == 42 && c.dropout == 0.2 && c.learningRate == 0.0006)
        #expect(try TrainConfig.load(file: try write(c.yaml())) == c)
    }

    @Test func blockSizeLargerThanTheDataIsAConfigError() throws {
        let data = try makeDataset(trainTokens: 100, valTokens: 20)
        var c = tinyConfig(dataset: data, runs: NSTemporaryDirectory())
        c.blockSize = 64
        #expect(throws: ConfigError.self) { try Trainer(config: c, runDir: NSTemporaryDirectory() + "x") }
    }
}

@Suite(.serialized) struct MoETrainingTests {
    func moeConfig(_ data: String, _ runs: String) -> TrainConfig {
        var c = tinyConfig(dataset: data, runs: runs)
        c.useMoE = true
        c.moe.nExp = 4; c.moe.topK = 2; c.moe.stride = 1; c.moe.useNoisyTopK = true; c.moe.sharedExpert = true
        return c
    }

    @Test func moeModelsResumeSampleAndReloadLikeDenseOnes() throws {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        let config = moeConfig(data, runs)
        let straight = try Trainer(config: config, runDir: runs + "/straight")
        straight.log = { _ in }
        try straight.train()
        #expect(straight.model is MoEGPT)
        #expect(straight.model!.activeParameterCount < straight.model!.parameterCount)

        let resumed = try trainStoppedAndResumed(config, runDir: runs + "/resumed", stopAt: 5).losses
        for step in 0..<8 {
            #expect(straight.losses[step] == resumed[step], "step \(step)")
        }
        let loaded = try Checkpoint.loadModel(from: runs + "/straight/checkpoint")
        #expect(loaded is MoEGPT && loaded.config == straight.model!.config)
        var options = SamplingOptions()
        options.maxNewTokens = 10
        #expect(try Sampler(model: loaded).generate(prompt: [1, 2], options: options).count == 10)
        let metrics = try String(contentsOfFile: runs + "/straight/metrics.jsonl", encoding: .utf8)
        #expect(metrics.contains("aux_loss") && metrics.contains("moe0.tokens_per_expert") && metrics.contains("router_entropy"))
    }

    @Test func impossibleMoESettingsAreConfigErrors() throws {
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: nil, overrides: ["moe.n_exp=2", "moe.top_k=3"]) }
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: nil, overrides: ["moe.n_exp=0"]) }
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: nil, overrides: ["moe.stride=0"]) }
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: nil, overrides: ["moe.train_capacity=0"]) }
        let single = try TrainConfig.load(file: nil, overrides: ["moe.n_exp=1", "moe.top_k=1"])
        #expect(single.useMoE && single.moe.nExp == 1)
    }
}

@Suite struct TrackingConfigTests {
    @Test func nestedWandbMappingLoadsAndRoundTrips() throws {
        let path = NSTemporaryDirectory() + "cfg-\(UUID().uuidString).yaml"
        try "tracking:\n  wandb:\n    project: nano\n    name: run1\n".write(toFile: path, atomically: true, encoding: .utf8)
        let c = try TrainConfig.load(file: path, overrides: ["tracking.wandb.entity=me"])
        #expect(c.wandbProject == "nano" && c.wandbName == "run1" && c.wandbEntity == "me")
        let again = NSTemporaryDirectory() + "cfg-\(UUID().uuidString).yaml"
        try c.yaml().write(toFile: again, atomically: true, encoding: .utf8)
        #expect(try TrainConfig.load(file: again) == c)
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: nil, overrides: ["tracking.wandb.projekt=x"]) }
    }
}

@Suite struct RunTrackingTests {
    @Test func aRunWritesTensorBoardEventsSamplesAndPlots() throws {
        let dir = NSTemporaryDirectory() + "track-data-\(UUID().uuidString)"
        try Prepare.run(text: String(repeating: "to be or not to be, that is the question. ", count: 50), source: "test",
                        folder: dir, tokenizer: .char, log: { _ in })
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var c = tinyConfig(dataset: dir, runs: runs)
        c.sampleTokens = 20
        let trainer = try Trainer(config: c, runDir: runs + "/t")
        trainer.log = { _ in }
        try trainer.train()
        let files = try FileManager.default.contentsOfDirectory(atPath: runs + "/t")
        let events = try #require(files.first { $0.hasPrefix("events.out.tfevents.") })
        let contents = try EventFileReader.read(path: runs + "/t/" + events)
        let tags = Set(contents.scalars.map(\.tag))
        #expect(tags.isSuperset(of: ["train/train_loss", "train/lr", "eval/val_loss", "perf/tokens_per_s", "perf/mfu"]))
        let val = contents.scalars.filter { $0.tag == "eval/val_loss" }.map(\.step)
        #expect(val == [0, 4, 8])
        #expect(contents.texts.contains { $0.tag == "config" } && contents.texts.filter { $0.tag == "samples" }.count == 3)
        for plot in SVGPlot.standardPlotNames { #expect(files.contains("plots") && FileManager.default.fileExists(atPath: runs + "/t/plots/" + plot)) }
        #expect(try String(contentsOfFile: runs + "/t/samples.txt", encoding: .utf8).contains("=== step 8 ==="))
        let listed = try RunIndex.list(logDirectory: runs)
        #expect(listed.map(\.name) == ["t"] && listed[0].status == .finished && listed[0].steps == 8)
    }
}
