import Foundation
/// Pointwise functions of one tensor. `affine(a, b)` is `a·x + b`.
public enum UnaryOp: Sendable, Equatable {
    case gelu, relu, silu, softplus, exp, log, tanh, sigmoid, square, sqrt, neg
    case affine(Float, Float)
}

/// Broadcasting binary operators.
public enum BinaryOp: Sendable, Equatable {
    case add, sub, mul, div
}

/// Reductions over one axis.
public enum ReduceOp: Sendable, Equatable {
    case sum, max
}

/// Distributions for `Backend.random`. Values are a pure function of (seed, offset, element index),
/// so they do not depend on the number of threads.
public enum RandomDistribution: Sendable, Equatable {
    case uniform(low: Float, high: Float)
    case normal(mean: Float, std: Float)
    /// Normal(mean, std) restricted to [low, high] by inverse-CDF sampling.
    case truncatedNormal(mean: Float, std: Float, low: Float, high: Float)
    /// 1 with probability p, else 0.
    case bernoulli(p: Float)
}

/// A view of an axis for kernels: the tensor as (outer, axis, inner) in row-major order.
public struct AxisView: Sendable, Equatable {
    public var outer: Int, axis: Int, inner: Int
    public init(outer: Int, axis: Int, inner: Int) { self.outer = outer; self.axis = axis; self.inner = inner }
    public init(shape: [Int], axis: Int) {
        outer = shape[..<axis].reduce(1, *)
        self.axis = shape[axis]
        inner = shape[(axis + 1)...].reduce(1, *)
    }
}

/// Shapes of a fused attention call: q and out are (B, H, Tq, D), k and v (B, H, Tk, D), contiguous.
/// With a KV cache the queries are the last Tq of the Tk positions (Tq ≤ Tk).
/// `packed`: q, k and v are one tensor (B, T, 3·H·D) as a QKV projection writes it (per position:
/// all heads' queries, then keys, then values), out is (B, T, H·D), and Tq = Tk; the kernels read
/// and write the heads in place, so no permute copies are made.
public struct AttentionShape: Sendable, Equatable {
    public var batch: Int, heads: Int, queryTime: Int, keyTime: Int, headDim: Int
    public var scale: Float
    public var causal: Bool
    public var dropout: Float
    public var seed: UInt64, offset: UInt64
    public var packed: Bool
    /// The element type the products Q·Kᵀ and P·V (and backward's) may take their operands in:
    /// float32, or bfloat16 under bf16 mixed precision, which lets a GPU run them on tensor cores
    /// (fp32 accumulation, softmax and lse). A backend may compute in float32 regardless (the CPU does).
    public var productType: DType
    public init(batch: Int, heads: Int, queryTime: Int, keyTime: Int, headDim: Int, scale: Float, causal: Bool,
                dropout: Float, seed: UInt64, offset: UInt64, packed: Bool = false, productType: DType = .float32) {
        self.batch = batch; self.heads = heads; self.queryTime = queryTime; self.keyTime = keyTime; self.headDim = headDim
        self.scale = scale; self.causal = causal; self.dropout = dropout; self.seed = seed; self.offset = offset
        self.packed = packed; self.productType = productType
    }

    /// Element offsets of head h (= batch index · heads + head) in q, k, v and out, and the
    /// strides between consecutive positions of q/k/v and of out.
    @inlinable public func layout(head h: Int) -> (q: Int, k: Int, v: Int, out: Int, row: Int, outRow: Int) {
        if packed {
            let c = heads * headDim, b = h / heads, within = (h % heads) * headDim
            let q = b * queryTime * 3 * c + within
            return (q, q + c, q + 2 * c, b * queryTime * c + within, 3 * c, c)
        }
        return (h * queryTime * headDim, h * keyTime * headDim, h * keyTime * headDim, h * queryTime * headDim, headDim, headDim)
    }
}

/// Hyperparameters of one AdamW step (Loshchilov & Hutter 2019, decoupled weight decay).
public struct AdamWStep: Sendable, Equatable {
    public var learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    /// 1-based step count, for bias correction.
    public var step: Int
    public init(learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step: Int) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.weightDecay = weightDecay; self.step = step
    }
}

extension AdamWStep {
    /// The step as `Backend.adamW(_:hyper:gradScale:)` reads it from device memory: learning rate,
    /// weight decay, step (exact up to 2²⁴), β1, β2, ε, then what the kernels derive from them
    /// (1 − lr·wd, lr / (1 − β1ᵗ), 1 / (1 − β2ᵗ)), computed here once as the eager kernels do.
    public var deviceLayout: [Float] {
        let c1 = 1 - Foundation.pow(beta1, Float(step)), c2 = 1 - Foundation.pow(beta2, Float(step))
        return [learningRate, weightDecay, Float(step), beta1, beta2, eps, 1 - learningRate * weightDecay, learningRate / c1, 1 / c2]
    }

    /// The step a `deviceLayout` array describes.
    public init(deviceLayout h: UnsafePointer<Float>) {
        self.init(learningRate: h[0], beta1: h[3], beta2: h[4], eps: h[5], weightDecay: h[1], step: Int(h[2]))
    }
}

/// A parameter with its gradient and AdamW moments (all float32, one shape, one device).
public struct AdamWTensors {
    public var param: Tensor, grad: Tensor, m: Tensor, v: Tensor
    public init(param: Tensor, grad: Tensor, m: Tensor, v: Tensor) { self.param = param; self.grad = grad; self.m = m; self.v = v }
}

/// The kernels a device provides. Tensors passed in are contiguous; outputs are allocated by
/// the engine (validated shapes and dtypes) and fully overwritten unless stated otherwise.
/// Model code never calls a backend: it calls tensor ops, which dispatch here.
public protocol Backend: AnyObject {
    var device: Device { get }
    /// A short description, e.g. "cpu (oneDNN 2.6.3, 2 threads)".
    var name: String { get }
    static func makeDefault() -> Self

    func allocate(byteCount: Int) throws -> Storage
    func write(_ bytes: UnsafeRawBufferPointer, to t: Tensor)
    func read(_ t: Tensor, into bytes: UnsafeMutableRawBufferPointer)
    func fill(_ t: Tensor, value: Float)
    func copy(_ src: Tensor, to dst: Tensor)
    /// Converts between dtypes; same element count.
    func cast(_ src: Tensor, to dst: Tensor)
    func random(_ t: Tensor, _ distribution: RandomDistribution, seed: UInt64, offset: UInt64)

    func unary(_ op: UnaryOp, _ x: Tensor, _ y: Tensor)
    /// dx = dy · f'(x) (overwrites dx).
    func unaryBackward(_ op: UnaryOp, x: Tensor, dy: Tensor, dx: Tensor)
    /// out = a ∘ b with NumPy broadcasting to out's shape; out may alias a.
    func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, _ out: Tensor)
    /// out = cond ≠ 0 ? a : b, broadcasting to out's shape.
    func select(_ cond: Tensor, _ a: Tensor, _ b: Tensor, _ out: Tensor)
    /// Writes x with its axes permuted into out.
    func permute(_ x: Tensor, _ perm: [Int], _ out: Tensor)
    /// Copies `length` slices along the axis: dst[o, dstStart+j, i] = src[o, srcStart+j, i].
    func copySlices(_ src: Tensor, _ srcView: AxisView, srcStart: Int, _ dst: Tensor, _ dstView: AxisView, dstStart: Int, length: Int)

    /// out[b] = op(a[b]) · op(b[b]) (+ bias) (+ out when accumulate). a: [batch, M, K] (or [batch, K, M] when
    /// transA); b: [batchB, K, N] (or [batchB, N, K]) with batchB = batch or 1 (shared weights).
    func matmul(_ a: Tensor, _ b: Tensor, bias: Tensor?, _ out: Tensor, batch: Int, m: Int, n: Int, k: Int,
                transA: Bool, transB: Bool, accumulate: Bool)

    func reduce(_ op: ReduceOp, _ x: Tensor, _ view: AxisView, _ out: Tensor)
    /// Softmax (or log-softmax) over the last axis of rows×cols.
    func softmax(_ x: Tensor, _ y: Tensor, rows: Int, cols: Int, log: Bool)
    func softmaxBackward(y: Tensor, dy: Tensor, dx: Tensor, rows: Int, cols: Int, log: Bool)
    func cumsum(_ x: Tensor, _ view: AxisView, _ out: Tensor, reverse: Bool)

    /// LayerNorm over the last axis; saves mean and 1/std per row.
    func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, y: Tensor, mean: Tensor, rstd: Tensor, rows: Int, cols: Int)
    func layerNormBackward(_ x: Tensor, weight: Tensor?, mean: Tensor, rstd: Tensor, dy: Tensor, dx: Tensor,
                           dweight: Tensor?, dbias: Tensor?, rows: Int, cols: Int)
    /// RMSNorm over the last axis; saves 1/rms per row.
    func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, y: Tensor, rstd: Tensor, rows: Int, cols: Int)
    func rmsNormBackward(_ x: Tensor, weight: Tensor?, rstd: Tensor, dy: Tensor, dx: Tensor, dweight: Tensor?, rows: Int, cols: Int)

    /// Fused scaled-dot-product attention; saves the log-sum-exp of each query row (B, H, Tq).
    func attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, _ shape: AttentionShape)
    func attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                           dq: Tensor, dk: Tensor, dv: Tensor, _ shape: AttentionShape)

    /// Per-row cross-entropy of logits (rows × classes) against int32 targets; rows whose
    /// target is `ignoreIndex` get loss 0. Saves the log-sum-exp per row.
    func crossEntropy(logits: Tensor, targets: Tensor, losses: Tensor, lse: Tensor, rows: Int, classes: Int, ignoreIndex: Int32)
    /// dlogits = (softmax − onehot) · scale for non-ignored rows, 0 for ignored rows; with
    /// `scaleBy` (one float32 on this backend), scale is multiplied by its value when the kernel
    /// runs (so a recorded graph needs no host read of the upstream gradient).
    func crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, dlogits: Tensor, scale: Float, scaleBy: Tensor?,
                              rows: Int, classes: Int, ignoreIndex: Int32)

    /// out[o, j, i] = x[o, index[j], i] (index-select / embedding lookup).
    func indexSelect(_ x: Tensor, _ view: AxisView, index: Tensor, _ out: Tensor)
    /// out[o, index[j], i] += src[o, j, i] (accumulates into out).
    func indexAdd(_ src: Tensor, index: Tensor, _ out: Tensor, _ outView: AxisView)
    /// torch.gather over the axis: out[o, j, i] = x[o, index[o, j, i], i]; index has out's shape.
    func gather(_ x: Tensor, _ view: AxisView, index: Tensor, _ out: Tensor, indexAxis: Int)
    /// out[o, index[o, j, i], i] += src[o, j, i] (accumulates into out).
    func scatterAdd(_ src: Tensor, index: Tensor, indexAxis: Int, _ out: Tensor, _ outView: AxisView)
    /// Largest k values per row (descending) and their int32 positions.
    func topK(_ x: Tensor, rows: Int, cols: Int, k: Int, values: Tensor, indices: Tensor)
    /// One fused AdamW update of param (in place), with moments m and v (in place).
    func adamW(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, _ h: AdamWStep)
    /// The same update for many parameters at once (a GPU launches one kernel for all of them).
    func adamW(_ tensors: [AdamWTensors], _ h: AdamWStep)
    /// The update with its hyperparameters read from device memory when the kernels run, so a
    /// recorded graph can replay it with each step's values: `hyper` is float32 [9] (`AdamWStep.deviceLayout`),
    /// and every gradient is first multiplied in place by `gradScale[0]` (the clipping factor) unless it is 1.
    func adamW(_ tensors: [AdamWTensors], hyper: Tensor, gradScale: Tensor)
    /// ‖tensors‖₂ (Σx² accumulated in double, then the square root, as float32) into one-element
    /// `out`, on the device: a gradient norm that is not read back.
    func gradientNorm(_ tensors: [Tensor], into out: Tensor)
    /// Σ x² of a float32 tensor, accumulated in double.
    func sumOfSquares(_ x: Tensor) -> Double
    /// True while a graph is recorded (see the default in the extension below).
    var isRecordingGraph: Bool { get }
    /// Largest absolute int32 value, used by index ops to validate before touching memory.
    func indexRange(_ index: Tensor) -> (min: Int32, max: Int32)
}

extension Backend {
    /// Whether a graph is being recorded (`GraphCapturing.captureGraph`): values on the device may
    /// not be produced yet, so ops must not read them back (false for backends that never record).
    public var isRecordingGraph: Bool { false }

    /// Parameter by parameter.
    public func adamW(_ tensors: [AdamWTensors], _ h: AdamWStep) {
        for t in tensors { adamW(param: t.param, grad: t.grad, m: t.m, v: t.v, h) }
    }
}
