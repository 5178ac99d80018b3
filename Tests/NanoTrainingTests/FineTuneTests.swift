import Foundation
import NanoCPU
import NanoData
import NanoEngine
import NanoModels
import NanoNN
import NanoTestSupport
@testable import NanoTraining
import Testing

private func tinyGPT(vocab: Int = 300, block: Int = 48, seed: UInt64 = 7) throws -> DenseGPT {
    try DenseGPT(GPTConfig(vocabSize: vocab, blockSize: block, nLayer: 2, nHead: 2, nEmbd: 16), seed: seed)
}

private func byteTokenizer() throws -> BPETokenizer {
    try BPETokenizer.train(text: "the cat sat on the mat. the dog sat on the log. " + String(repeating: "to be or not to be ", count: 5),
                           vocabularySize: 280)
}

private func temporaryFile(_ name: String, _ text: String) throws -> String {
    let dir = NSTemporaryDirectory() + "nanodecoder-ft-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    return dir + "/" + name
}

@Suite(.serialized) struct LoRATests {
    @Test func adapterWithZeroBLeavesTheModelExactlyAsItWas() throws {
        let model = try tinyGPT()
        let x = try Tensor(indices: (0..<20).map { Int32($0 * 7 % 300) }, shape: [2, 10])
        let before = try withNoGrad { try model(x).toArray() }
        let adapted = try model.attachLoRA(LoRASettings(rank: 4, alpha: 8, targets: ["attn", "mlp"]), generator: Generator(seed: 3))
        #expect(adapted.count == 8)   // 2 blocks × (qkv, proj, fc, proj)
        let after = try withNoGrad { try model(x).toArray() }
        #expect(before == after)
    }

    @Test func mergingGivesTheSameLogitsAsBasePlusAdapter() throws {
        let model = try tinyGPT()
        try model.attachLoRA(LoRASettings(rank: 4, alpha: 8, targets: ["attn", "mlp"]), generator: Generator(seed: 3))
        for (_, b) in model.loraParameters() where b.shape[1] == 4 {   // the B matrices: make the update non-zero
            try b.assign(try Tensor.randn(b.shape, std: 0.1, generator: Generator(seed: 5)))
        }
        let x = try Tensor(indices: (0..<20).map { Int32($0 * 13 % 300) }, shape: [2, 10])
        let adapted = try withNoGrad { try model(x).toArray() }
        let plain = try tinyGPT()
        let basePlain = try withNoGrad { try plain(x).toArray() }
        #expect(zip(adapted, basePlain).map { abs($0 - $1) }.max()! > 1e-3, "the adapter should change the logits")
        #expect(try model.mergeLoRA() == 8)
        #expect(model.loraParameters().isEmpty)
        let merged = try withNoGrad { try model(x).toArray() }
        let worst = zip(adapted, merged).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-5, "merged vs adapted: \(worst)")
    }

    @Test func onlyTrainableParametersChange() throws {
        let model = try tinyGPT()
        try model.attachLoRA(LoRASettings(rank: 2, alpha: 4, targets: ["attn"]), generator: Generator(seed: 3))
        let frozen = model.namedParameters().filter { !$0.tensor.requiresGrad }
        let trainable = model.trainableParameters()
        #expect(trainable.allSatisfy { $0.name.contains(".lora.") } && trainable.count == 8)
        let frozenBefore = try frozen.map { try $0.tensor.toArray() }
        let trainableBefore = try trainable.map { try $0.tensor.toArray() }
        let optimizer = try AdamW(trainable, decayed: [], beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0)
        let x = try Tensor(indices: (0..<16).map { Int32($0 % 300) }, shape: [2, 8])
        let y = try Tensor(indices: (0..<16).map { Int32(($0 + 1) % 300) }, shape: [2, 8])
        for _ in 0..<3 {
            model.zeroGrad()
            try model.loss(x, targets: y, training: true).total.backward()
            for (name, p) in frozen { #expect(p.grad == nil, "\(name) got a gradient") }
            try optimizer.update(learningRate: 1e-2)
        }
        for (i, (name, p)) in frozen.enumerated() { #expect(try p.toArray() == frozenBefore[i], "\(name) changed") }
        let changed = try trainable.enumerated().filter { try $0.element.tensor.toArray() != trainableBefore[$0.offset] }
        #expect(changed.count == trainable.count, "every adapter matrix moves (B from zero, then A)")
    }

    @Test func loraLinearPassesTheGradientCheck() throws {
        let linear = try Linear(5, 3, generator: Generator(seed: 1))
        linear.lora = try LoRA(inFeatures: 5, outFeatures: 3, rank: 2, alpha: 3, generator: Generator(seed: 2))
        try linear.lora!.b.assign(try Tensor.randn([3, 2], generator: Generator(seed: 4)))
        let x = try Tensor.randn([4, 5], generator: Generator(seed: 6))
        try gradCheck("lora linear", [x, linear.lora!.a, linear.lora!.b]) { inputs in
            linear.lora!.a = inputs[1]; linear.lora!.b = inputs[2]
            return try linear(inputs[0])
        }
    }

    @Test func noMatchingTargetIsAClearError() throws {
        let model = try tinyGPT()
        #expect(throws: TensorError.self) { try model.attachLoRA(LoRASettings(rank: 2, alpha: 4, targets: ["nosuchlayer"])) }
    }
}

@Suite(.serialized) struct InstructionTuningTests {
    @Test func maskedLossEqualsTheLossOverResponseTokensByHand() throws {
        let model = try tinyGPT()
        let rows = [EncodedExample(tokens: [5, 6, 7, 8, 9, 10, 11], promptLength: 4, index: 0),
                    EncodedExample(tokens: [20, 21, 22, 23, 24], promptLength: 2, index: 1)]
        let (x, y, counted) = try InstructionTask.batch(rows, pad: 299)
        #expect(x.shape == [2, 6])
        let targets = try y.toInt32Array()
        // Row 0 predicts tokens 1...6; tokens 4, 5, 6 are the response. Row 1: tokens 2, 3, 4; then padding.
        #expect(targets == [-1, -1, -1, 9, 10, 11, -1, 22, 23, 24, -1, -1])
        #expect(counted == 6)
        let masked = try withNoGrad { try model.loss(x, targets: y, training: false).lm.item() }

        let logits = try withNoGrad { try model(x).toArray() }
        var total = 0.0, n = 0
        for (b, row) in rows.enumerated() {
            for i in 0..<(row.tokens.count - 1) where i + 1 >= row.promptLength {
                let start = (b * 6 + i) * 300
                let z = logits[start..<(start + 300)].map(Double.init)
                let m = z.max()!
                let lse = m + Foundation.log(z.map { Foundation.exp($0 - m) }.reduce(0, +))
                total += lse - z[Int(row.tokens[i + 1])]
                n += 1
            }
        }
        #expect(abs(Double(masked) - total / Double(n)) < 1e-5, "\(masked) vs \(total / Double(n))")
    }

    @Test func examplesReadWithTheirLineNumbersAndBadOnesNamed() throws {
        let good = try temporaryFile("data.json", """
        [
          {"instruction": "Say hi.", "input": "", "output": "Hi."},
          {"instruction": "Add.", "input": "1 and 2", "output": "3"}
        ]
        """)
        let examples = try FineTuneData.instructionExamples(good)
        #expect(examples.count == 2 && examples[1].input == "1 and 2")
        #expect(examples[1].prompt.hasSuffix("### Input:\n1 and 2\n\n### Response:\n"))
        #expect(!examples[0].prompt.contains("### Input"))
        let bad = try temporaryFile("bad.json", "[\n  {\"instruction\": \"a\", \"output\": \"b\"},\n  {\"instruction\": \"c\"}\n]")
        #expect { try FineTuneData.instructionExamples(bad) } throws: { error in
            "\(error)".contains("bad.json:3:") && "\(error)".contains("'output'")
        }
        let broken = try temporaryFile("broken.json", "[{\"instruction\": \"a\", ")
        #expect { try FineTuneData.instructionExamples(broken) } throws: { "\($0)".contains("not valid JSON") }
    }

    @Test func taskTrainsThroughTheSharedTrainerAndWritesResponses() throws {
        let tokenizer = try byteTokenizer()
        let examples = (0..<40).map { i in
            InstructionExample(instruction: "Repeat the word \(i % 4 == 0 ? "cat" : "dog").", output: i % 4 == 0 ? "cat" : "dog")
        }
        let model = try tinyGPT(block: 256)
        let task = try InstructionTask(base: model, tokenizer: tokenizer, tokenizerFiles: [], examples: examples,
                                       split: [0.8, 0.1, 0.1], file: "test", lora: LoRASettings(rank: 2, alpha: 4, targets: ["attn", "mlp"]),
                                       batchSize: 4, seed: 1)
        task.maxResponseTokens = 4
        var config = TrainConfig()
        config.maxIters = 10; config.evalInterval = 5; config.warmupIters = 2; config.lrDecayIters = 10
        config.learningRate = 3e-3; config.minLr = 3e-4; config.plots = false; config.logInterval = 100
        let runDir = NSTemporaryDirectory() + "instruct-\(UUID().uuidString)"
        let trainer = try Trainer(config: config, runDir: runDir, task: task)
        trainer.log = { _ in }
        try trainer.train()
        #expect(trainer.losses[9]! < trainer.losses[0]!)
        let responses = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDir + "/test_responses.json"))) as! [[String: String]]
        #expect(responses.count == 4 && responses.allSatisfy { $0["model_response"] != nil })
        // Adapters are saved alone, and the full checkpoint reloads with them attached.
        let adapter = try SafeTensors.read(runDir + "/checkpoint/adapter.safetensors")
        #expect(adapter.tensors.count == 16 && adapter.tensors.keys.allSatisfy { $0.contains(".lora.") })
        let reloaded = try Checkpoint.loadModel(from: runDir + "/checkpoint")
        let x = try Tensor(indices: [1, 2, 3, 4], shape: [1, 4])
        #expect(try withNoGrad { try reloaded(x, cache: nil, training: false).toArray() } == withNoGrad { try model(x).toArray() })
    }

    @Test func tokenizerWithoutEndOfTextIsRefused() throws {
        let chars = CharTokenizer(training: "abc")
        #expect { try InstructionTask(base: try tinyGPT(), tokenizer: chars, tokenizerFiles: [], examples: [InstructionExample(instruction: "a", output: "b")],
                                       split: [1, 0, 0], file: "x.json", lora: nil, batchSize: 1, seed: 1) } throws: { "\($0)".contains("<|endoftext|>") }
    }
}

@Suite(.serialized) struct ClassificationTests {
    @Test func lastRealTokenIsReadSoPaddingChangesNothing() throws {
        let classifier = try GPTClassifier(base: try tinyGPT(), classes: 3, generator: Generator(seed: 2))
        let alone = try withNoGrad { try classifier(Tensor(indices: [4, 5, 6], shape: [1, 3]), lengths: [3]).toArray() }
        let padded = try withNoGrad {
            try classifier(Tensor(indices: [4, 5, 6, 0, 0, 9, 8, 7, 6, 5], shape: [2, 5]), lengths: [3, 5]).toArray()
        }
        #expect(zip(alone, padded.prefix(3)).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func trainableChoicesFreezeTheRest() throws {
        let classifier = try GPTClassifier(base: try tinyGPT(), classes: 2)
        try classifier.setTrainable(.head)
        #expect(classifier.trainableParameters().map(\.name) == ["classifier.weight", "classifier.bias"])
        try classifier.setTrainable(.lastBlocks(1))
        let names = classifier.trainableParameters().map(\.name)
        #expect(names.contains("base.blocks.1.mlp.fc.weight") && names.contains("base.finalNorm.weight"))
        #expect(!names.contains { $0.hasPrefix("base.blocks.0.") || $0.contains("Embedding") })
    }

    @Test func csvWithQuotesAndNewlinesParsesAndBadRowsNameTheirLine() throws {
        let file = try temporaryFile("d.csv", "text,label\n\"a, quoted \"\"text\"\"\nover two lines\",x\nplain,y\n,y\n")
        let (rows, skipped) = try FineTuneData.labeledTexts(file, textColumn: "text", labelColumn: "label")
        #expect(rows == [LabeledText(text: "a, quoted \"text\"\nover two lines", label: "x", line: 2), LabeledText(text: "plain", label: "y", line: 4)])
        #expect(skipped == 1)
        let bad = try temporaryFile("b.csv", "text,label\nok,x\ntoo,many,fields\n")
        #expect { try FineTuneData.labeledTexts(bad, textColumn: "text", labelColumn: "label") } throws: { "\($0)".contains("b.csv:3: expected 2 fields, got 3") }
        let jsonl = try temporaryFile("d.jsonl", "{\"text\": \"hi\", \"label\": 1}\nnot json\n")
        #expect { try FineTuneData.labeledTexts(jsonl, textColumn: "text", labelColumn: "label") } throws: { "\($0)".contains("d.jsonl:2: not a JSON object") }
        let wrongColumns = try temporaryFile("c.tsv", "sentence\tclass\nhi\tx\n")
        #expect { try FineTuneData.labeledTexts(wrongColumns, textColumn: "text", labelColumn: "label") } throws: { "\($0)".contains("--text-column") }
    }

    @Test func stratifiedSplitKeepsClassProportions() {
        let strata = (0..<100).map { $0 < 80 ? "a" : "b" }
        let parts = FineTuneData.split(count: 100, fractions: [0.7, 0.1, 0.2], seed: 3, strata: strata)
        #expect(parts.map(\.count) == [70, 10, 20])
        #expect(Set(parts.joined()).count == 100)
        #expect(parts[2].filter { strata[$0] == "b" }.count == 4)
    }

    @Test func unknownLabelInValidationIsAnErrorWithItsLine() throws {
        let tokenizer = try byteTokenizer()
        let train = [LabeledText(text: "the cat", label: "a", line: 2), LabeledText(text: "the dog", label: "b", line: 3)]
        let val = [LabeledText(text: "the mat", label: "c", line: 7)]
        #expect { try ClassificationTask(base: try tinyGPT(), tokenizer: tokenizer, tokenizerFiles: [], splits: [train, val, []], file: "val.csv",
                                          trainable: .all, lora: nil, maxLength: nil, batchSize: 2, seed: 1) } throws: { "\($0)".contains("val.csv:7: label 'c'") }
    }

    @Test func classifierLearnsASeparableTaskAndReloadsFromItsCheckpoint() throws {
        let tokenizer = try byteTokenizer()
        let rows = (0..<60).map { i in
            LabeledText(text: i % 2 == 0 ? "the cat sat on the mat \(i)" : "to be or not to be \(i)", label: i % 2 == 0 ? "cat" : "hamlet", line: i + 2)
        }
        let parts = FineTuneData.split(count: rows.count, fractions: [0.7, 0.1, 0.2], seed: 1, strata: rows.map(\.label)).map { $0.map { rows[$0] } }
        let task = try ClassificationTask(base: try tinyGPT(), tokenizer: tokenizer, tokenizerFiles: [], splits: parts, file: "t.csv",
                                          trainable: .all, lora: LoRASettings(rank: 2, alpha: 4, targets: ["attn"]), maxLength: 12, batchSize: 6, seed: 1)
        var config = TrainConfig()
        config.maxIters = 3 * task.stepsPerEpoch; config.evalInterval = task.stepsPerEpoch; config.warmupIters = 1
        config.lrDecayIters = config.maxIters; config.learningRate = 1e-2; config.minLr = 1e-3; config.plots = false
        let runDir = NSTemporaryDirectory() + "classify-\(UUID().uuidString)"
        let trainer = try Trainer(config: config, runDir: runDir, task: task)
        var lines: [String] = []
        trainer.log = { lines.append($0) }
        try trainer.train()
        let test = try JSONDecoder().decode(ClassificationScores.self, from: Data(contentsOf: URL(fileURLWithPath: runDir + "/test_metrics.json")))
        #expect(test.accuracy == 1, "\(lines.joined(separator: "\n"))")
        #expect(lines.contains { $0.contains("confusion") })
        let (reloaded, spec) = try Checkpoint.loadClassifier(from: runDir + "/checkpoint")
        #expect(spec.labels == ["cat", "hamlet"] && spec.lora?.rank == 2)
        let p1 = try task.probabilities("the cat sat")
        let p2 = try ClassificationTask.probabilities(model: reloaded, tokenizer: tokenizer, maxLength: 12, text: "the cat sat")
        #expect(p1 == p2)
        #expect(FileManager.default.fileExists(atPath: runDir + "/checkpoint/adapter.safetensors"))
    }
}
