import Foundation
import NanoEngine
import NanoModels

/// Hugging Face GPT-2 folders (`config.json`, `model.safetensors`, tokenizer files) ↔ Nanodecoder
/// checkpoints. HF's GPT-2 uses Conv1D layers whose weights are stored [in, out]; ours are
/// PyTorch Linear [out, in], so those four matrices per block are transposed on the way.
public enum HuggingFaceGPT2 {
    /// (HF name inside a block, our name inside a block, transposed?)
    static let blockMap: [(String, String, Bool)] = [
        ("ln_1.weight", "norm1.weight", false), ("ln_1.bias", "norm1.bias", false),
        ("attn.c_attn.weight", "attention.qkv.weight", true), ("attn.c_attn.bias", "attention.qkv.bias", false),
        ("attn.c_proj.weight", "attention.proj.weight", true), ("attn.c_proj.bias", "attention.proj.bias", false),
        ("ln_2.weight", "norm2.weight", false), ("ln_2.bias", "norm2.bias", false),
        ("mlp.c_fc.weight", "mlp.fc.weight", true), ("mlp.c_fc.bias", "mlp.fc.bias", false),
        ("mlp.c_proj.weight", "mlp.proj.weight", true), ("mlp.c_proj.bias", "mlp.proj.bias", false),
    ]
    static let topMap: [(String, String)] = [
        ("wte.weight", "tokenEmbedding.weight"), ("wpe.weight", "positionEmbedding.weight"),
        ("ln_f.weight", "finalNorm.weight"), ("ln_f.bias", "finalNorm.bias"),
    ]

    /// Reads config.json into our model config.
    public static func readConfig(folder: String) throws -> GPTConfig {
        let path = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: path),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FileFormatError.invalid(path: path, reason: "missing or not a JSON object")
        }
        func int(_ key: String, _ fallback: String? = nil) throws -> Int {
            if let v = json[key] as? Int { return v }
            if let f = fallback, let v = json[f] as? Int { return v }
            throw FileFormatError.invalid(path: path, reason: "needs an integer '\(key)'")
        }
        if let type = json["model_type"] as? String, type != "gpt2" {
            throw FileFormatError.invalid(path: path, reason: "model_type '\(type)' is not gpt2")
        }
        if let act = json["activation_function"] as? String, act != "gelu_new" && act != "gelu_pytorch_tanh" {
            throw FileFormatError.invalid(path: path, reason: "activation_function '\(act)' is not the tanh GELU (gelu_new) this model uses")
        }
        if let eps = json["layer_norm_epsilon"] as? Double, abs(eps - 1e-5) > 1e-12 {
            throw FileFormatError.invalid(path: path, reason: "layer_norm_epsilon \(eps) differs from the 1e-5 Nanodecoder uses")
        }
        let config = GPTConfig(vocabSize: try int("vocab_size"), blockSize: try int("n_positions", "n_ctx"), nLayer: try int("n_layer"),
                               nHead: try int("n_head"), nEmbd: try int("n_embd"), dropout: 0, bias: true,
                               tieWeights: json["tie_word_embeddings"] as? Bool ?? true)
        if let inner = json["n_inner"] as? Int, inner != 4 * config.nEmbd {
            throw FileFormatError.invalid(path: path, reason: "n_inner \(inner) is not 4·n_embd")
        }
        return config
    }

    /// A dense GPT with the weights of a Hugging Face GPT-2 folder.
    public static func importModel(folder: String) throws -> DenseGPT {
        var config = try readConfig(folder: folder)
        let path = folder + "/model.safetensors"
        var (tensors, _) = try SafeTensors.read(path)
        // Older exports lack the "transformer." prefix; the causal-mask buffers are not weights.
        tensors = Dictionary(uniqueKeysWithValues: tensors.map { key, value in
            (key.hasPrefix("transformer.") ? String(key.dropFirst("transformer.".count)) : key, value)
        })
        if !config.tieWeights && tensors["lm_head.weight"] == nil { config.tieWeights = true }
        let model = try DenseGPT(config)
        let ours = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor) })
        func load(_ hf: String, _ name: String, transpose: Bool) throws {
            guard let src = tensors[hf] else { throw FileFormatError.invalid(path: path, reason: "missing weight '\(hf)'") }
            guard let dst = ours[name] else { return }
            var t = try src.cast(to: .float32)
            if transpose { t = try t.transposed() }
            guard t.shape == dst.shape else {
                throw FileFormatError.invalid(path: path, reason: "'\(hf)' has shape \(src.shape), expected \(transpose ? dst.shape.reversed() : dst.shape)")
            }
            try dst.assign(t)
        }
        try withNoGrad {
            for (hf, name) in topMap { try load(hf, name, transpose: false) }
            for i in 0..<config.nLayer {
                for (hf, name, transpose) in blockMap { try load("h.\(i).\(hf)", "blocks.\(i).\(name)", transpose: transpose) }
            }
            if !config.tieWeights { try load("lm_head.weight", "head.weight", transpose: false) }
        }
        return model
    }

    /// Writes `model` in the Hugging Face GPT-2 layout (`config.json`, `model.safetensors`).
    public static func export(_ model: DenseGPT, to folder: String, endOfText: Int?) throws {
        let c = model.config
        guard c.mlpRatio == nil || c.mlpRatio == 4 else {
            throw FileFormatError.invalid(path: folder, reason: "GPT-2's layout has 4× MLPs; this model's mlp_ratio is \(c.mlpRatio!)")
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let ours = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor) })
        var out: [(String, Tensor)] = []
        try withNoGrad {
            for (hf, name) in topMap { out.append(("transformer." + hf, ours[name]!)) }
            for i in 0..<c.nLayer {
                for (hf, name, transpose) in blockMap {
                    let t = ours["blocks.\(i).\(name)"]!
                    out.append(("transformer.h.\(i).\(hf)", transpose ? try t.transposed() : t))
                }
            }
            if let head = model.head { out.append(("lm_head.weight", head.weight)) }
        }
        try writeAtomically(try SafeTensors.encode(out, metadata: ["format": "pt"]), to: folder + "/model.safetensors")
        var config: [String: Any] = [
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": c.vocabSize, "n_positions": c.blockSize,
            "n_ctx": c.blockSize, "n_embd": c.nEmbd, "n_layer": c.nLayer, "n_head": c.nHead, "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": 0.02,
            "tie_word_embeddings": c.tieWeights, "scale_attn_weights": true, "use_cache": true,
        ]
        if let eot = endOfText { config["bos_token_id"] = eot; config["eos_token_id"] = eot }
        try writeAtomically(try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
                            to: folder + "/config.json")
    }
}
