import Foundation
import NanoCPU
@testable import NanoEngine
import Testing

/// Forward values of every op against an independent NumPy reference (float64 maths on the
/// same float32 inputs). The cases live in Fixtures/ops.json, written by
/// `python3 scripts/make_op_fixtures.py`; each case carries its own absolute tolerance.
@Suite struct OpFixtureTests {
    @Test func fixtureFileLoadsWithCases() throws {
        let file = try OpFixtureFile.load()
        #expect(!file.cases.isEmpty, "Fixtures/ops.json holds no cases")
        #expect(Set(file.cases.map(\.name)).count == file.cases.count, "case names in Fixtures/ops.json repeat")
    }

    @Test(arguments: try OpFixtureFile.load().cases)
    func forwardValuesMatchNumpy(_ fixture: OpFixtureCase) throws {
        let outputs: [Tensor]
        do {
            guard let result = try fixture.runOp() else {
                Issue.record("\(fixture.name): unknown op \"\(fixture.op)\"")
                return
            }
            outputs = result
        } catch {
            Issue.record("\(fixture.name): op \(fixture.op) threw \(error)")
            return
        }
        let expected = [fixture.output] + (fixture.extraOutputs ?? [])
        guard outputs.count == expected.count else {
            Issue.record("\(fixture.name): op returned \(outputs.count) tensors, the fixture expects \(expected.count)")
            return
        }
        for (i, (got, want)) in zip(outputs, expected).enumerated() {
            let label = expected.count > 1 ? "\(fixture.name) (output \(i))" : fixture.name
            try expectMatch(got, want, tolerance: fixture.tolerance, label: label)
        }
    }
}

/// Shape and dtype must agree; int32 values exactly; float values within `tolerance` (absolute).
private func expectMatch(_ got: Tensor, _ want: FixtureTensor, tolerance: Double, label: String) throws {
    let wantDType: DType = want.isInt32 ? .int32 : .float32
    guard got.shape == want.shape, got.dtype == wantDType else {
        Issue.record("\(label): got shape \(got.shape) \(got.dtype), expected \(want.shape) \(wantDType)")
        return
    }
    if want.isInt32 {
        let values = try got.toInt32Array().map { Double($0) }
        #expect(values == want.data, "\(label): got \(values.map { Int($0) }), expected \(want.data.map { Int($0) })")
        return
    }
    let values = try got.toArray()
    var worst = 0.0, worstIndex = 0
    for (i, (ours, reference)) in zip(values, want.data).enumerated() {
        // Exact cases (tolerance 0) compare against the reference rounded to float32: JSON
        // decodes through Double, whose nearest value is not the float32 one.
        let error = tolerance == 0 ? abs(Double(ours) - Double(Float(reference))) : abs(Double(ours) - reference)
        if error.isNaN || error > worst {
            worst = error.isNaN ? .infinity : error
            worstIndex = i
        }
    }
    #expect(worst <= tolerance,
            "\(label): max |ours - numpy| = \(worst) at element \(worstIndex) (ours \(values[worstIndex]), numpy \(want.data[worstIndex])), tolerance \(tolerance)")
}

// MARK: - Fixture file

/// Fixtures/ops.json: `{"cases": [...]}`.
struct OpFixtureFile: Decodable, Sendable {
    var cases: [OpFixtureCase]

    static func load() throws -> OpFixtureFile {
        guard let url = Bundle.module.url(forResource: "ops", withExtension: "json", subdirectory: "Fixtures") else {
            throw OpFixtureError.missingFile
        }
        return try JSONDecoder().decode(OpFixtureFile.self, from: Data(contentsOf: url))
    }
}

/// One op applied to named inputs, with the NumPy result(s) and an absolute tolerance.
struct OpFixtureCase: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    var op: String
    var inputs: [String: FixtureTensor]
    var params: OpFixtureParams
    var output: FixtureTensor
    /// Further results of ops that return several tensors (topK indices, split pieces).
    var extraOutputs: [FixtureTensor]?
    var tolerance: Double

    var testDescription: String { name }
}

/// A tensor in the fixture: row-major values, float32 unless `dtype` is "int32".
struct FixtureTensor: Decodable, Sendable {
    var shape: [Int]
    var data: [Double]
    var dtype: String?

    var isInt32: Bool { dtype == "int32" }

    func makeTensor() throws -> Tensor {
        if isInt32 {
            let indices = try data.map { value -> Int32 in
                guard let index = Int32(exactly: value) else { throw OpFixtureError.notAnInteger(value) }
                return index
            }
            return try Tensor(indices: indices, shape: shape)
        }
        return try Tensor(data.map { Float($0) }, shape: shape)
    }
}

/// Every parameter any op takes; each case sets the ones its op needs.
struct OpFixtureParams: Decodable, Sendable {
    var axis: Int?
    var axes: [Int]?
    var keepDims: Bool?
    var reverse: Bool?
    var scalar: Double?
    var scale: Double?
    var shift: Double?
    var eps: Double?
    var transposeSelf: Bool?
    var transposeOther: Bool?
    var causal: Bool?
    var ignoreIndex: Int?
    var k: Int?
    var value: Double?
    var classes: Int?
    var order: [Int]?
    var sizes: [Int]?
    var start: Int?
    var length: Int?
    var dtype: String?
}

enum OpFixtureError: Error, CustomStringConvertible {
    case missingFile
    case missingInput(String)
    case missingParam(String)
    case badParam(String)
    case notAnInteger(Double)

    var description: String {
        switch self {
        case .missingFile: "Fixtures/ops.json is not in the test bundle (run python3 scripts/make_op_fixtures.py)"
        case let .missingInput(key): "the case has no input \"\(key)\""
        case let .missingParam(key): "the case has no parameter \"\(key)\""
        case let .badParam(message): "bad parameter: \(message)"
        case let .notAnInteger(value): "int32 tensor holds \(value)"
        }
    }
}

private func requireParam<T>(_ value: T?, _ name: String) throws -> T {
    guard let value else { throw OpFixtureError.missingParam(name) }
    return value
}

// MARK: - Running a case

extension OpFixtureCase {
    func input(_ key: String) throws -> Tensor {
        guard let tensor = inputs[key] else { throw OpFixtureError.missingInput(key) }
        return try tensor.makeTensor()
    }

    func optionalInput(_ key: String) throws -> Tensor? {
        try inputs[key]?.makeTensor()
    }

    /// The op's results, or nil when the fixture names an op this test does not know.
    func runOp() throws -> [Tensor]? {
        let p = params
        switch op {
        // Pointwise
        case "gelu": return [try input("x").gelu()]
        case "relu": return [try input("x").relu()]
        case "silu": return [try input("x").silu()]
        case "softplus": return [try input("x").softplus()]
        case "exp": return [try input("x").exp()]
        case "log": return [try input("x").log()]
        case "tanh": return [try input("x").tanh()]
        case "sigmoid": return [try input("x").sigmoid()]
        case "sqrt": return [try input("x").sqrt()]
        case "square": return [try input("x").square()]
        case "add": return [try input("a") + input("b")]
        case "sub": return [try input("a") - input("b")]
        case "mul": return [try input("a") * input("b")]
        case "div": return [try input("a") / input("b")]
        case "mulScalar":
            let scalar = Float(try requireParam(p.scalar, "scalar"))
            return [try input("x") * scalar]
        case "affine":
            let scale = Float(try requireParam(p.scale, "scale")), shift = Float(try requireParam(p.shift, "shift"))
            return [try input("x").affine(scale: scale, shift: shift)]

        // Reductions
        case "sum": return [try input("x").sum(axes: p.axes, keepDims: p.keepDims ?? false)]
        case "mean": return [try input("x").mean(axes: p.axes, keepDims: p.keepDims ?? false)]
        case "max": return [try input("x").max(axis: requireParam(p.axis, "axis"), keepDims: p.keepDims ?? false)]
        case "cumsum": return [try input("x").cumsum(axis: requireParam(p.axis, "axis"), reverse: p.reverse ?? false)]

        // Rows: softmax, normalisation, loss
        case "softmax": return [try input("x").softmax()]
        case "logSoftmax": return [try input("x").logSoftmax()]
        case "layerNorm":
            let eps = Float(try requireParam(p.eps, "eps"))
            return [try input("x").layerNorm(weight: optionalInput("weight"), bias: optionalInput("bias"), eps: eps)]
        case "rmsNorm":
            let eps = Float(try requireParam(p.eps, "eps"))
            return [try input("x").rmsNorm(weight: optionalInput("weight"), eps: eps)]
        case "crossEntropy":
            let ignoreIndex = Int32(try requireParam(p.ignoreIndex, "ignoreIndex"))
            return [try input("logits").crossEntropy(targets: input("targets"), ignoreIndex: ignoreIndex)]

        // Products
        case "matmul":
            return [try input("a").matmul(input("b"), transposeSelf: p.transposeSelf ?? false,
                                          transposeOther: p.transposeOther ?? false)]
        case "linear": return [try input("x").linear(weight: input("weight"), bias: optionalInput("bias"))]
        case "attention":
            let causal = try requireParam(p.causal, "causal")
            return [try Tensor.scaledDotProductAttention(q: input("q"), k: input("k"), v: input("v"),
                                                         causal: causal, dropout: 0)]

        // Indexing
        case "embedding": return [try input("table").embedding(input("tokens"))]
        case "indexSelect": return [try input("x").indexSelect(axis: requireParam(p.axis, "axis"), index: input("index"))]
        case "gather": return [try input("x").gather(axis: requireParam(p.axis, "axis"), index: input("index"))]
        case "scatterAdd":
            return [try input("x").scatterAdding(axis: requireParam(p.axis, "axis"), index: input("index"),
                                                 source: input("source"))]
        case "topK":
            let (values, indices) = try input("x").topK(requireParam(p.k, "k"))
            return [values, indices]
        case "where": return [try Tensor.where(input("condition"), input("a"), input("b"))]
        case "maskedFill":
            let value = Float(try requireParam(p.value, "value"))
            return [try input("x").maskedFill(input("mask"), value: value)]
        case "oneHot": return [try input("index").oneHot(classes: requireParam(p.classes, "classes"))]

        // Shape and layout
        case "permute": return [try input("x").permuted(requireParam(p.order, "order"))]
        case "transpose":
            let axes = try requireParam(p.axes, "axes")
            guard axes.count == 2 else { throw OpFixtureError.badParam("transpose needs two axes, got \(axes)") }
            return [try input("x").transposed(axes[0], axes[1])]
        case "concat":
            // Inputs are named a, b, c, … in joining order.
            let parts = try inputs.keys.sorted().map { try input($0) }
            return [try Tensor.concat(parts, axis: requireParam(p.axis, "axis"))]
        case "split": return try input("x").split(requireParam(p.sizes, "sizes"), axis: requireParam(p.axis, "axis"))
        case "slice":
            return [try input("x").slice(axis: requireParam(p.axis, "axis"), start: requireParam(p.start, "start"),
                                         length: requireParam(p.length, "length"))]
        case "castRoundTrip":
            let name = try requireParam(p.dtype, "dtype")
            guard let dtype = DType(rawValue: name) else { throw OpFixtureError.badParam("unknown dtype \(name)") }
            return [try input("x").cast(to: dtype).cast(to: .float32)]

        default: return nil
        }
    }
}
