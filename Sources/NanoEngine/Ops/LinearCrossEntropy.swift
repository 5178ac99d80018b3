// A language-model head and its cross-entropy fused over chunks of rows, so the [rows, vocab]
// logits and their gradient never exist whole.

extension Tensor {
    /// Rows of logits per chunk by default: 2²⁵ logits (128 MB in float32) at most.
    static func linearCrossEntropyChunk(rows: Int, vocab: Int) -> Int { Swift.max(1, Swift.min(rows, (1 << 25) / Swift.max(vocab, 1))) }

    /// The mean cross-entropy of the logits hidden·weightᵀ against `targets` (rows whose target is
    /// `ignoreIndex` left out): the value of `hidden.linear(weight: weight).crossEntropy(targets:)`,
    /// without the [rows, vocab] logits in memory. `chunkRows` rows at a time (default: 2²⁵ logits
    /// a chunk), the logits are made and their loss taken and, when gradients are wanted, their
    /// gradient for a unit upstream gradient is turned at once into those rows' d hidden and their
    /// share of d weight. Backward only multiplies the two by the upstream gradient, on the device
    /// (nothing is read back, so a recorded graph can hold it). The products are the ones an
    /// unfused head and backward run, in the same precision (bf16 operands under bf16 autocast);
    /// peak extra memory is a chunk's logits and their gradient (and its bf16 copy under
    /// autocast) plus d hidden and d weight, instead of the logits and their gradient for every
    /// row (GPT-2, 16 × 1024 tokens: 2 × 3.3 GB). Under fp16 autocast
    /// the head runs unfused: a unit-scale gradient in fp16 would underflow before the loss scale
    /// could lift it.
    /// hidden: [..., C]; weight: [V, C]; targets: [...] (int32), the leading shape of hidden.
    public static func linearCrossEntropy(hidden: Tensor, weight: Tensor, targets: Tensor, ignoreIndex: Int32 = -1,
                                          chunkRows: Int? = nil) throws -> Tensor {
        let op = "linearCrossEntropy"
        try hidden.requireFloat32(op)
        try weight.requireFloat32(op)
        try targets.requireInt32(op, role: "targets")
        try requireSameDevice(op, [hidden, weight, targets])
        guard weight.rank == 2, hidden.rank >= 1, hidden.shape.last == weight.shape[1], Array(hidden.shape.dropLast()) == targets.shape else {
            throw TensorError.shapeMismatch(op: op, shapes: [hidden.shape, weight.shape, targets.shape],
                                            expected: "hidden [..., C], weight [V, C] and targets [...] with hidden's leading shape")
        }
        if let chunkRows, chunkRows < 1 {
            throw TensorError.invalidArgument(op: op, message: "chunkRows \(chunkRows) must be at least 1")
        }
        let p = MixedPrecision.compute
        if p == .float16 { return try hidden.linear(weight: weight).crossEntropy(targets: targets, ignoreIndex: ignoreIndex) }
        let (vocab, width) = (weight.shape[0], weight.shape[1])
        let rows = hidden.count / Swift.max(width, 1)
        let backend = hidden.backend
        // While a graph is recorded nothing is read back: the caller vouches that no target is ignored.
        let recording = backend.isRecordingGraph
        if recording && !GraphRecording.targetsAreAllValid {
            throw TensorError.invalidArgument(op: op, message: "counting the targets that are not ignored reads them back, which a graph being recorded cannot do; record only batches whose targets are all valid (GraphRecording.targetsAreAllValid)")
        }
        let valid = recording ? rows : try targets.validTargetCount(classes: vocab, ignoreIndex: ignoreIndex)
        let wantsGradients = GradMode.isEnabled && (hidden.requiresGrad || weight.requiresGrad)
        let h = try hidden.detached().reshaped([rows, width]), t = try targets.reshaped([rows])
        let w = try weight.detached().inComputeType(p)
        let losses = try hidden.emptyLike([rows]), lse = try hidden.emptyLike([rows])
        let dHidden = wantsGradients && hidden.requiresGrad ? try hidden.emptyLike([rows, width]) : nil
        let dWeight = wantsGradients && weight.requiresGrad ? try Tensor.zeros([vocab, width], device: weight.device) : nil
        let chunk = chunkRows ?? linearCrossEntropyChunk(rows: rows, vocab: vocab)
        for r0 in stride(from: 0, to: rows, by: chunk) {
            let n = Swift.min(chunk, rows - r0)
            let hc = try h.flatView(start: r0 * width, count: n * width).reshaped([n, width]).inComputeType(p)
            let tc = try t.flatView(start: r0, count: n), lc = try lse.flatView(start: r0, count: n)
            let logits = try Tensor.gemm(hc, w, transA: false, transB: true, op: op)   // [n, V]
            backend.crossEntropy(logits: logits, targets: tc, losses: try losses.flatView(start: r0, count: n), lse: lc,
                                 rows: n, classes: vocab, ignoreIndex: ignoreIndex)
            guard wantsGradients else { continue }
            // d loss / d logits for these rows, for a unit upstream gradient.
            let d = try logits.emptyLike([n, vocab])
            backend.crossEntropyBackward(logits: logits, targets: tc, lse: lc, dlogits: d, scale: 1 / Float(Swift.max(valid, 1)),
                                         scaleBy: nil, rows: n, classes: vocab, ignoreIndex: ignoreIndex)
            let dc = try d.inComputeType(p)
            if let dHidden {   // d hidden rows = d·W
                backend.matmul(dc, w, bias: nil, try dHidden.flatView(start: r0 * width, count: n * width), batch: 1,
                               m: n, n: width, k: vocab, transA: false, transB: false, accumulate: false)
            }
            if let dWeight {   // d weight += dᵀ·hidden rows
                backend.matmul(dc, hc, bias: nil, dWeight, batch: 1, m: vocab, n: width, k: n, transA: true, transB: false, accumulate: true)
            }
        }
        let loss = try withNoGrad { try losses.sum().scaled(by: 1 / Float(Swift.max(valid, 1))) }
        let hiddenShape = hidden.shape
        return Tensor.record(op, output: loss, inputs: [hidden, weight]) { g in
            [try dHidden.map { try $0.reshaped(hiddenShape) * g }, try dWeight.map { try $0 * g }]
        }
    }
}
