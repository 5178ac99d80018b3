import Foundation
import NanoData
import NanoEngine
import NanoModels
import NanoNN
@testable import NanoTraining
import Testing

@Suite struct EvaluationTests {
    let config = GPTConfig(vocabSize: 30, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 16)

    @Test func slidingWindowScoresEveryTokenOnceAndMatchesOneWindowWhenTheTextFits() throws {
        let model = try DenseGPT(config, seed: 2)
        let short = (0..<12).map { ($0 * 7) % 30 }
        let whole = try Evaluation.tokenLosses(model, tokens: [short.dropLast().map(Int32.init)],
                                               targets: [short.dropFirst().map(Int32.init)])[0]
        let expected = Foundation.exp(whole.reduce(0.0) { $0 + Double($1) } / Double(whole.count))
        for stride in [1, 5, 16] {
            let r = try Evaluation.perplexity(model, tokens: short, stride: stride)
            #expect(r.tokens == 11)
            #expect(abs(r.perplexity - expected) < 1e-3 * expected, "stride \(stride)")
        }
        let long = (0..<100).map { ($0 * 11 + $0 / 3) % 30 }
        for stride in [4, 8, 16] { #expect(try Evaluation.perplexity(model, tokens: long, stride: stride).tokens == 99) }
        #expect(throws: TensorError.self) { try Evaluation.perplexity(model, tokens: long, stride: 17) }
    }

    func items(count: Int, seed: UInt64) throws -> [Evaluation.HellaSwagItem] {
        let u = try Tensor.uniform([count * 20], generator: Generator(seed: seed)).toArray()
        let letters = Array("abcdefghij")
        func word(_ i: Int, _ n: Int) -> String { String((0..<n).map { letters[Int(u[(i + $0) % u.count] * 10) % 10] }) }
        return (0..<count).map { i in
            Evaluation.HellaSwagItem(ctx: word(i * 20, 5), endings: (0..<4).map { word(i * 20 + 5 + $0 * 3, 2 + $0 % 2) },
                                     label: Int(u[i * 20 + 19] * 4) % 4)
        }
    }

    @Test func batchedAndUnbatchedScoresAgree() throws {
        let tokenizer = CharTokenizer(training: "abcdefghij ")
        let model = try DenseGPT(GPTConfig(vocabSize: tokenizer.vocabularySize, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 16), seed: 4)
        let data = try items(count: 10, seed: 8)
        let one = try Evaluation.hellaSwag(model, tokenizer: tokenizer, items: data, batchSize: 1)
        let three = try Evaluation.hellaSwag(model, tokenizer: tokenizer, items: data, batchSize: 3)
        #expect(one.predictions == three.predictions)
        #expect(one.accuracySum == three.accuracySum)
    }

    @Test func randomEndingsScoreNearChanceAndLearnedEndingsScorePerfectly() throws {
        let tokenizer = CharTokenizer(training: "abcdefghij ")
        let model = try DenseGPT(GPTConfig(vocabSize: tokenizer.vocabularySize, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 32), seed: 5)
        let chance = try Evaluation.hellaSwag(model, tokenizer: tokenizer, items: try items(count: 300, seed: 9), batchSize: 16)
        #expect((0.15...0.35).contains(chance.accuracyNormalized), "untrained model: \(chance.accuracyNormalized)")

        // Overfit the model on the right endings of 6 items, then it must pick them all.
        let learned = try items(count: 6, seed: 10)
        let rows = try learned.map { try tokenizer.encode($0.ctx + " " + $0.endings[$0.label]) }
        let width = rows.map(\.count).max()!
        let inputs = rows.map { $0.dropLast().map(Int32.init) + [Int32](repeating: 0, count: width - $0.count) }
        let targets = rows.map { $0.dropFirst().map(Int32.init) + [Int32](repeating: -1, count: width - $0.count) }
        let x = try Tensor(indices: inputs.flatMap { $0 }, shape: [rows.count, width - 1])
        let y = try Tensor(indices: targets.flatMap { $0 }, shape: [rows.count, width - 1])
        let opt = try AdamW(model.namedParameters(), decayed: [], beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0)
        for _ in 0..<150 {
            model.zeroGrad()
            try model(x, cache: nil, training: true).crossEntropy(targets: y, ignoreIndex: -1).backward()
            try opt.update(learningRate: 1e-2)
        }
        let result = try Evaluation.hellaSwag(model, tokenizer: tokenizer, items: learned, batchSize: 4)
        #expect(result.accuracyNormalized == 1.0 && result.accuracySum == 1.0)
    }

    @Test func malformedHellaSwagLinesNameTheLine() throws {
        let path = NSTemporaryDirectory() + "hs-\(UUID().uuidString).jsonl"
        try "{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": 1}\n{\"ctx\": 3}\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try Evaluation.loadHellaSwag(path)
            Issue.record("expected an error")
        } catch let e as FileFormatError {
            #expect(e.description.contains("line 2"))
        }
    }
}

@Suite struct PeriodicEvaluationTests {
    @Test func trainingRunsHellaSwagEveryIntervalAndRecordsIt() throws {
        let dir = NSTemporaryDirectory() + "hs-data-\(UUID().uuidString)"
        let text = String(repeating: "the cat sat on the mat. a dog ate the bone. ", count: 60)
        try Prepare.run(text: text, source: "test", folder: dir, tokenizer: .char, log: { _ in })
        let items = dir + "/hs.jsonl"
        try """
        {"ctx": "the cat sat on", "endings": ["the mat.", "a bone.", "the dog.", "cat ate."], "label": 0}
        {"ctx": "a dog ate", "endings": ["the mat.", "the bone.", "on the.", "sat dog."], "label": 1}
        """.write(toFile: items, atomically: true, encoding: .utf8)
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var c = tinyConfig(dataset: dir, runs: runs)
        c.maxIters = 4; c.evalInterval = 2; c.hellaswagInterval = 2; c.hellaswagData = items
        let trainer = try Trainer(config: c, runDir: runs + "/t")
        trainer.log = { _ in }
        try trainer.train()
        let lines = try String(contentsOfFile: runs + "/t/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains("hellaswag_acc_norm") }.count == 3)   // steps 0, 2, 4
        #expect(throws: ConfigError.self) { try TrainConfig.load(file: nil, overrides: ["eval.hellaswag_interval=5"]) }
    }
}
