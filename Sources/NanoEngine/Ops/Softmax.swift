// Softmax and log-softmax over the last axis, and fused softmax cross-entropy.

extension Tensor {
    func softmaxOp(log: Bool) throws -> Tensor {
        let name = log ? "logSoftmax" : "softmax"
        try requireFloat32(name)
        let cols = shape.last ?? 1, rows = count / Swift.max(cols, 1)
        let y = try emptyLike(shape)
        backend.softmax(self, y, rows: rows, cols: cols, log: log)
        return Tensor.record(name, output: y, inputs: [self]) { g in
            let dx = try g.emptyLike(g.shape)
            g.backend.softmaxBackward(y: y, dy: g, dx: dx, rows: rows, cols: cols, log: log)
            return [dx]
        }
    }

    /// Softmax over the last axis.
    public func softmax() throws -> Tensor { try softmaxOp(log: false) }
    /// Log-softmax over the last axis.
    public func logSoftmax() throws -> Tensor { try softmaxOp(log: true) }

    /// Mean cross-entropy of logits [..., classes] against int32 targets [...]; targets equal to
    /// `ignoreIndex` are left out of the mean. Fused: the softmax is never stored.
    public func crossEntropy(targets: Tensor, ignoreIndex: Int32 = -1) throws -> Tensor {
        try requireFloat32("crossEntropy")
        try targets.requireInt32("crossEntropy", role: "targets")
        try Tensor.requireSameDevice("crossEntropy", [self, targets])
        let classes = shape.last ?? 1, rows = count / Swift.max(classes, 1)
        guard rank >= 1, Array(shape.dropLast()) == targets.shape else {
            throw TensorError.shapeMismatch(op: "crossEntropy", shapes: [shape, targets.shape],
                                            expected: "logits [..., classes] and targets [...] with the same leading shape")
        }
        // While a graph is recorded nothing can be read back: the caller vouches that no target is
        // ignored (GraphRecording.targetsAreAllValid), and the dataset checked their range.
        let recording = backend.isRecordingGraph
        if recording && !GraphRecording.targetsAreAllValid {
            throw TensorError.invalidArgument(op: "crossEntropy", message: "counting the targets that are not ignored reads them back, which a graph being recorded cannot do; record only batches whose targets are all valid (GraphRecording.targetsAreAllValid)")
        }
        let valid = recording ? rows : try targets.validTargetCount(classes: classes, ignoreIndex: ignoreIndex)
        let losses = try emptyLike([rows]), lse = try emptyLike([rows])
        backend.crossEntropy(logits: self, targets: targets, losses: losses, lse: lse, rows: rows, classes: classes, ignoreIndex: ignoreIndex)
        let total = try withNoGrad { try losses.sum() }
        let loss = try withNoGrad { try total.scaled(by: 1 / Float(Swift.max(valid, 1))) }
        return Tensor.record("crossEntropy", output: loss, inputs: [self]) { [logits = self] g in
            // The upstream gradient scales the kernel: read here, or by the kernel itself when recording.
            let readsBack = !logits.backend.isRecordingGraph
            let scale = (readsBack ? try g.item() : 1) / Float(Swift.max(valid, 1))
            let d = try logits.emptyLike(logits.shape)
            logits.backend.crossEntropyBackward(logits: logits, targets: targets, lse: lse, dlogits: d, scale: scale,
                                                scaleBy: readsBack ? nil : try g.reshaped([1]),
                                                rows: rows, classes: classes, ignoreIndex: ignoreIndex)
            return [d]
        }
    }

    /// Number of targets that are not ignored; throws on targets outside [0, classes).
    func validTargetCount(classes: Int, ignoreIndex: Int32) throws -> Int {
        let values = try toInt32Array()
        var valid = 0
        for t in values where t != ignoreIndex {
            guard t >= 0 && Int(t) < classes else { throw TensorError.indexOutOfRange(op: "crossEntropy", index: Int(t), bound: classes) }
            valid += 1
        }
        return valid
    }
}
