import Foundation
import NanoEngine
import NanoModels
@testable import NanoTraining
import NanoTestSupport
import Testing

/// A Python with numpy and safetensors (scripts/test.sh makes .venv-test); skipped without one.
let pythonWithSafetensors = python(importing: "safetensors, numpy")

/// Runs python with arguments; returns stdout + stderr and records a failure on a non-zero exit.
func runPython(_ python: String, arguments: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    p.waitUntilExit()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(p.terminationStatus == 0, "python failed: \(text)")
    return text
}

@Suite struct PythonInteropTests {
    @Test(.enabled(if: pythonWithSafetensors != nil, "needs Python with safetensors (scripts/test.sh sets it up)"))
    func checkpointWeightsReadBackWithPythonSafetensors() throws {
        let dir = NSTemporaryDirectory() + "ckpt-py-\(UUID().uuidString)"
        let model = try DenseGPT(GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16), seed: 5)
        try Checkpoint.save(to: dir, model: model)
        // Python prints name, shape, sum of each tensor and the metadata's config.
        let script = """
        import sys, json
        from safetensors import safe_open
        with safe_open(sys.argv[1], framework="numpy") as f:
            print(json.dumps({"meta": f.metadata(), "tensors": {k: [list(f.get_tensor(k).shape), float(f.get_tensor(k).astype("float64").sum())] for k in f.keys()}}))
        """
        let output = try runPython(pythonWithSafetensors!, arguments: ["-c", script, dir + "/model.safetensors"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let tensors = try #require(json["tensors"] as? [String: [Any]])
        let params = model.namedParameters()
        #expect(tensors.count == params.count)
        for (name, p) in params {
            let entry = try #require(tensors[name], "python did not see \(name)")
            #expect(entry[0] as? [Int] == p.shape)
            let sum = try p.toArray().reduce(0.0) { $0 + Double($1) }
            #expect(abs((entry[1] as? Double ?? .nan) - sum) < 1e-4, "\(name): python sum \(entry[1]) vs \(sum)")
        }
        let meta = try #require(json["meta"] as? [String: String])
        #expect(meta["gpt_config"]?.contains("\"nEmbd\":16") == true)
    }
}
