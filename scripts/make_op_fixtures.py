#!/usr/bin/env python3
"""Reference forward values for Nanodecoder's tensor ops, computed independently with NumPy.

Writes Tests/NanoEngineTests/Fixtures/ops.json, which OpFixtureTests.swift loads to check the
engine's forward pass op by op. Inputs are small float32 (or int32) arrays drawn from a fixed
seed; references are computed in float64 from those float32 inputs.

Run once from the repository root and commit the output:

    python3 scripts/make_op_fixtures.py

Only NumPy (2.x) is needed. The output is deterministic, so rerunning it leaves the file
unchanged unless this script changes.

File format: {"cases": [case, ...]} where a case is
    {"name", "op", "inputs": {key: tensor}, "params": {...}, "output": tensor,
     "extraOutputs": [tensor, ...] (only for ops with several results), "tolerance": float}
and a tensor is {"shape": [...], "data": [...]} with "dtype": "int32" for integer tensors
(float32 otherwise). Tolerances are absolute: max |engine - reference| <= tolerance.
"""

import json
import math
import os

import numpy as np

OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "NanoEngineTests",
                        "Fixtures", "ops.json")

rng = np.random.default_rng(1234)

# Absolute tolerances (float32 engine vs float64 reference).
TOL = 1e-5            # pointwise, reductions, small matmuls
TOL_ROWS = 2e-5       # attention, layerNorm, softmax, crossEntropy
TOL_LONG_K = 1e-4     # matmul with K >= 32 (oneDNN's accumulation order)
EXACT = 0.0           # ops that only move or select float32 values, and dtype round trips

cases = []


# MARK: - Serialisation

def f32_number(v):
    """Shortest decimal that reads back (decimal -> double -> float32) as exactly v."""
    f = np.float32(v)
    if not np.isfinite(f):
        raise ValueError(f"non-finite value {v}: JSON cannot hold it")
    short = float(str(f))  # NumPy prints the shortest text that round-trips the float32
    if np.float32(short) == f:  # read back through a double, as the Swift test does
        return short
    return float(f)  # the full double text is always exact


def number(v):
    """A reference value: exact float32 text when it is a float32, else the double."""
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"non-finite reference value {v}")
    if float(np.float32(v)) == v:
        return f32_number(v)
    return v


def float_tensor(a):
    a = np.asarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "data": [f32_number(v) for v in a.ravel()]}


def int_tensor(a):
    a = np.asarray(a)
    assert np.issubdtype(a.dtype, np.integer)
    return {"shape": list(a.shape), "dtype": "int32", "data": [int(v) for v in a.ravel()]}


def ref_tensor(a):
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.integer):
        return int_tensor(a)
    a = a.astype(np.float64)
    return {"shape": list(a.shape), "data": [number(v) for v in a.ravel()]}


def add_case(name, op, inputs, output, tolerance=TOL, params=None, extra_outputs=None):
    assert all(c["name"] != name for c in cases), name
    enc_inputs = {}
    for key, value in inputs.items():
        value = np.asarray(value)
        enc_inputs[key] = int_tensor(value) if np.issubdtype(value.dtype, np.integer) else float_tensor(value)
    case = {"name": name, "op": op, "inputs": enc_inputs, "params": params or {}, "output": ref_tensor(output)}
    if extra_outputs:
        case["extraOutputs"] = [ref_tensor(o) for o in extra_outputs]
    case["tolerance"] = tolerance
    cases.append(case)


# MARK: - Inputs

def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def uniform(low, high, *shape):
    return rng.uniform(low, high, shape).astype(np.float32)


def ints(low, high, *shape):
    return rng.integers(low, high, shape).astype(np.int32)


def f64(a):
    return np.asarray(a, dtype=np.float64)


# MARK: - Reference maths (float64)

def gelu_tanh(x):
    x = f64(x)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-f64(x)))


def log_softmax(x):
    x = f64(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(x):
    return np.exp(log_softmax(x))


def layer_norm(x, w, b, eps):
    x = f64(x)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # biased, as PyTorch
    y = (x - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * f64(w)
    if b is not None:
        y = y + f64(b)
    return y


def rms_norm(x, w, eps):
    x = f64(x)
    y = x / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + eps)
    return y * f64(w) if w is not None else y


def attention(q, k, v, causal):
    q, k, v = f64(q), f64(k), f64(v)
    t, d = q.shape[-2], q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(d)
    if causal:
        future = np.triu(np.ones((t, t), dtype=bool), k=1)  # key j > query i
        scores = np.where(future, -np.inf, scores)
    return softmax(scores) @ v


def cross_entropy(logits, targets, ignore):
    logp = log_softmax(logits).reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    keep = t != ignore
    picked = logp[np.nonzero(keep)[0], t[keep]]
    return np.array(-picked.sum() / max(int(keep.sum()), 1))


def scatter_add(x, axis, index, source):
    out = f64(x).copy()
    coords = list(np.indices(index.shape))
    coords[axis] = index
    np.add.at(out, tuple(coords), f64(source))
    return out


def bfloat16_round_trip(x):
    """float32 -> bfloat16 (round to nearest, ties to even) -> float32, by bit manipulation."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) >> 16) << 16
    return (rounded & 0xFFFFFFFF).astype(np.uint32).view(np.float32)


def f32_from_bits(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


# MARK: - Cases

# Activations and other unary ops.
x = randn(2, 3, 5, scale=2.0)
add_case("gelu_tanh_2x3x5", "gelu", {"x": x}, gelu_tanh(x))
add_case("relu_2x3x5", "relu", {"x": x}, np.maximum(f64(x), 0))
add_case("silu_2x3x5", "silu", {"x": x}, f64(x) * sigmoid(x))
add_case("softplus_2x3x5", "softplus", {"x": x}, np.logaddexp(0.0, f64(x)))
add_case("tanh_2x3x5", "tanh", {"x": x}, np.tanh(f64(x)))
add_case("sigmoid_2x3x5", "sigmoid", {"x": x}, sigmoid(x))
add_case("square_2x3x5", "square", {"x": x}, f64(x) ** 2)
xe = uniform(-3.0, 3.0, 4, 7)
add_case("exp_4x7", "exp", {"x": xe}, np.exp(f64(xe)))
xp = uniform(0.05, 4.0, 4, 7)
add_case("log_positive_4x7", "log", {"x": xp}, np.log(f64(xp)))
add_case("sqrt_positive_4x7", "sqrt", {"x": xp}, np.sqrt(f64(xp)))
xg = randn(4, 7, scale=3.0)
add_case("gelu_tanh_wide_range_4x7", "gelu", {"x": xg}, gelu_tanh(xg))

# Broadcasting arithmetic and scalar forms.
a = randn(2, 3, 5)
row, col, mid = randn(5), randn(3, 1), randn(2, 1, 5)
den = (uniform(0.5, 2.0, 3, 1) * np.where(rng.random((3, 1)) < 0.5, -1, 1)).astype(np.float32)
add_case("add_broadcast_row_2x3x5_5", "add", {"a": a, "b": row}, f64(a) + f64(row))
add_case("sub_broadcast_column_2x3x5_3x1", "sub", {"a": a, "b": col}, f64(a) - f64(col))
add_case("mul_broadcast_middle_2x3x5_2x1x5", "mul", {"a": a, "b": mid}, f64(a) * f64(mid))
add_case("div_broadcast_column_2x3x5_3x1", "div", {"a": a, "b": den}, f64(a) / f64(den))
add_case("sub_broadcast_left_5_2x3x5", "sub", {"a": row, "b": a}, f64(row) - f64(a))
outer_a, outer_b = randn(3, 1), randn(1, 5)
add_case("add_outer_3x1_1x5", "add", {"a": outer_a, "b": outer_b}, f64(outer_a) + f64(outer_b))
add_case("mul_scalar_2x3x5", "mulScalar", {"x": a}, f64(a) * 2.5, params={"scalar": 2.5})
add_case("affine_2x3x5", "affine", {"x": a}, -1.5 * f64(a) + 0.25, params={"scale": -1.5, "shift": 0.25})

# Reductions.
r = randn(2, 3, 5)
add_case("sum_axis1_2x3x5", "sum", {"x": r}, f64(r).sum(axis=1), params={"axes": [1], "keepDims": False})
add_case("sum_axes0and2_keepdims_2x3x5", "sum", {"x": r}, f64(r).sum(axis=(0, 2), keepdims=True),
         params={"axes": [0, 2], "keepDims": True})
add_case("sum_all_2x3x5", "sum", {"x": r}, np.array(f64(r).sum()), params={"keepDims": False})
add_case("mean_last_axis_keepdims_2x3x5", "mean", {"x": r}, f64(r).mean(axis=-1, keepdims=True),
         params={"axes": [-1], "keepDims": True})
add_case("mean_all_2x3x5", "mean", {"x": r}, np.array(f64(r).mean()), params={"keepDims": False})
add_case("max_axis1_2x3x5", "max", {"x": r}, f64(r).max(axis=1), tolerance=EXACT,
         params={"axis": 1, "keepDims": False})
add_case("max_last_axis_keepdims_2x3x5", "max", {"x": r}, f64(r).max(axis=-1, keepdims=True), tolerance=EXACT,
         params={"axis": -1, "keepDims": True})
add_case("cumsum_axis1_2x3x5", "cumsum", {"x": r}, np.cumsum(f64(r), axis=1), params={"axis": 1, "reverse": False})
add_case("cumsum_reverse_last_axis_2x3x5", "cumsum", {"x": r},
         np.flip(np.cumsum(np.flip(f64(r), axis=-1), axis=-1), axis=-1), params={"axis": -1, "reverse": True})

# Softmax family.
s = randn(2, 3, 7, scale=2.0)
add_case("softmax_last_axis_2x3x7", "softmax", {"x": s}, softmax(s), tolerance=TOL_ROWS)
add_case("log_softmax_last_axis_2x3x7", "logSoftmax", {"x": s}, log_softmax(s), tolerance=TOL_ROWS)
s_big = (randn(3, 6) * 4 + 30).astype(np.float32)  # large logits: needs the max shift
add_case("softmax_large_logits_3x6", "softmax", {"x": s_big}, softmax(s_big), tolerance=TOL_ROWS)

# Normalisation.
n = (randn(2, 3, 8) * 1.5 + 0.7).astype(np.float32)
nw, nb = (1 + randn(8, scale=0.3)).astype(np.float32), randn(8, scale=0.5)
add_case("layer_norm_affine_2x3x8", "layerNorm", {"x": n, "weight": nw, "bias": nb}, layer_norm(n, nw, nb, 1e-5),
         tolerance=TOL_ROWS, params={"eps": 1e-5})
add_case("layer_norm_plain_2x3x8", "layerNorm", {"x": n}, layer_norm(n, None, None, 1e-5),
         tolerance=TOL_ROWS, params={"eps": 1e-5})
add_case("rms_norm_weighted_2x3x8", "rmsNorm", {"x": n, "weight": nw}, rms_norm(n, nw, 1e-6),
         tolerance=TOL_ROWS, params={"eps": 1e-6})
add_case("rms_norm_plain_large_eps_4x7", "rmsNorm", {"x": xe}, rms_norm(xe, None, 1e-2),
         tolerance=TOL_ROWS, params={"eps": 1e-2})

# Matrix products.
m_a, m_b = randn(4, 7), randn(7, 5)
add_case("matmul_4x7_7x5", "matmul", {"a": m_a, "b": m_b}, f64(m_a) @ f64(m_b),
         params={"transposeSelf": False, "transposeOther": False})
m_at, m_bt = randn(7, 4), randn(5, 7)
add_case("matmul_transpose_self_7x4_7x5", "matmul", {"a": m_at, "b": m_b}, f64(m_at).T @ f64(m_b),
         params={"transposeSelf": True, "transposeOther": False})
add_case("matmul_transpose_other_4x7_5x7", "matmul", {"a": m_a, "b": m_bt}, f64(m_a) @ f64(m_bt).T,
         params={"transposeSelf": False, "transposeOther": True})
m_a4 = randn(2, 3, 4, 7)
add_case("matmul_shared_b_2x3x4x7_7x5", "matmul", {"a": m_a4, "b": m_b}, f64(m_a4) @ f64(m_b),
         params={"transposeSelf": False, "transposeOther": False})
m_a3t = randn(2, 7, 4)
add_case("matmul_shared_b_transpose_self_2x7x4_7x5", "matmul", {"a": m_a3t, "b": m_b},
         np.swapaxes(f64(m_a3t), -1, -2) @ f64(m_b), params={"transposeSelf": True, "transposeOther": False})
m_a3 = randn(2, 4, 7)
add_case("matmul_shared_b_transpose_other_2x4x7_5x7", "matmul", {"a": m_a3, "b": m_bt},
         f64(m_a3) @ f64(m_bt).T, params={"transposeSelf": False, "transposeOther": True})
m_b3 = randn(2, 7, 5)
add_case("matmul_batched_2x4x7_2x7x5", "matmul", {"a": m_a3, "b": m_b3}, f64(m_a3) @ f64(m_b3),
         params={"transposeSelf": False, "transposeOther": False})
m_b3t = randn(2, 5, 7)
add_case("matmul_batched_both_transposed_2x7x4_2x5x7", "matmul", {"a": m_a3t, "b": m_b3t},
         np.swapaxes(f64(m_a3t), -1, -2) @ np.swapaxes(f64(m_b3t), -1, -2),
         params={"transposeSelf": True, "transposeOther": True})
k_a, k_b = randn(3, 64), randn(64, 6)
add_case("matmul_long_k_3x64_64x6", "matmul", {"a": k_a, "b": k_b}, f64(k_a) @ f64(k_b), tolerance=TOL_LONG_K,
         params={"transposeSelf": False, "transposeOther": False})

lx, lw, lb = randn(2, 3, 8), randn(6, 8, scale=0.5), randn(6)
add_case("linear_bias_2x3x8_to_6", "linear", {"x": lx, "weight": lw, "bias": lb}, f64(lx) @ f64(lw).T + f64(lb))
add_case("linear_no_bias_4x7_to_5", "linear", {"x": m_a, "weight": m_bt}, f64(m_a) @ f64(m_bt).T)

# Attention.
q, k, v = randn(2, 2, 5, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4)
add_case("attention_causal_2x2x5x4", "attention", {"q": q, "k": k, "v": v}, attention(q, k, v, True),
         tolerance=TOL_ROWS, params={"causal": True})
add_case("attention_full_2x2x5x4", "attention", {"q": q, "k": k, "v": v}, attention(q, k, v, False),
         tolerance=TOL_ROWS, params={"causal": False})

# Cross-entropy.
ce_logits = randn(6, 7, scale=2.0)
ce_targets = np.array([3, -1, 0, 6, -1, 2], dtype=np.int32)
add_case("cross_entropy_ignores_minus_one_6x7", "crossEntropy", {"logits": ce_logits, "targets": ce_targets},
         cross_entropy(ce_logits, ce_targets, -1), tolerance=TOL_ROWS, params={"ignoreIndex": -1})
ce3_logits = randn(2, 3, 7)
ce3_targets = np.array([[1, 4, -100], [6, 0, 5]], dtype=np.int32)
add_case("cross_entropy_3d_ignore_index_minus_100_2x3x7", "crossEntropy",
         {"logits": ce3_logits, "targets": ce3_targets}, cross_entropy(ce3_logits, ce3_targets, -100),
         tolerance=TOL_ROWS, params={"ignoreIndex": -100})
ce_all = ints(0, 7, 4)
ce_all_logits = randn(4, 7)
add_case("cross_entropy_no_ignored_4x7", "crossEntropy", {"logits": ce_all_logits, "targets": ce_all},
         cross_entropy(ce_all_logits, ce_all, -1), tolerance=TOL_ROWS, params={"ignoreIndex": -1})

# Indexing.
table, tokens = randn(10, 4), np.array([[3, 0, 9], [3, 7, 1]], dtype=np.int32)
add_case("embedding_10x4_tokens_2x3", "embedding", {"table": table, "tokens": tokens}, f64(table)[tokens],
         tolerance=EXACT)
isel = np.array([2, 0, 2, 1], dtype=np.int32)
add_case("index_select_axis1_repeats_2x3x5", "indexSelect", {"x": r, "index": isel}, np.take(f64(r), isel, axis=1),
         tolerance=EXACT, params={"axis": 1})
isel0 = np.array([3, 1], dtype=np.int32)
add_case("index_select_axis0_4x7", "indexSelect", {"x": xe, "index": isel0}, np.take(f64(xe), isel0, axis=0),
         tolerance=EXACT, params={"axis": 0})
gx, gi = randn(3, 6), ints(0, 6, 3, 4)
add_case("gather_axis1_3x6_index_3x4", "gather", {"x": gx, "index": gi},
         np.take_along_axis(f64(gx), gi, axis=1), tolerance=EXACT, params={"axis": 1})
gx0, gi0 = randn(4, 5), ints(0, 4, 2, 5)
add_case("gather_axis0_4x5_index_2x5", "gather", {"x": gx0, "index": gi0},
         np.take_along_axis(f64(gx0), gi0, axis=0), tolerance=EXACT, params={"axis": 0})
sx, si, ss = randn(3, 5), ints(0, 3, 4, 5), randn(4, 5)
add_case("scatter_add_axis0_repeated_3x5", "scatterAdd", {"x": sx, "index": si, "source": ss},
         scatter_add(sx, 0, si, ss), params={"axis": 0})
sx3, si3, ss3 = randn(2, 3, 5), ints(0, 5, 2, 3, 7), randn(2, 3, 7)
add_case("scatter_add_last_axis_repeated_2x3x5", "scatterAdd", {"x": sx3, "index": si3, "source": ss3},
         scatter_add(sx3, 2, si3, ss3), params={"axis": -1})
assert len(np.unique(si)) < si.size and len(np.unique(si3)) < si3.size  # repeats accumulate

tk = randn(3, 8)
assert all(len(np.unique(row_)) == row_.size for row_ in tk)  # no ties
tk_idx = np.argsort(-f64(tk), axis=-1, kind="stable")[:, :3].astype(np.int32)
add_case("top_k_3_of_3x8", "topK", {"x": tk}, np.take_along_axis(f64(tk), tk_idx, axis=-1), tolerance=EXACT,
         params={"k": 3}, extra_outputs=[tk_idx])
tk3 = randn(2, 2, 6)
assert all(len(np.unique(row_)) == row_.size for row_ in tk3.reshape(-1, 6))
tk3_idx = np.argsort(-f64(tk3), axis=-1, kind="stable").astype(np.int32)
add_case("top_k_all_2x2x6", "topK", {"x": tk3}, np.take_along_axis(f64(tk3), tk3_idx, axis=-1), tolerance=EXACT,
         params={"k": 6}, extra_outputs=[tk3_idx])

cond = (rng.random((2, 3, 5)) < 0.5).astype(np.float32)
add_case("where_mask_2x3x5_broadcast_b_5", "where", {"condition": cond, "a": a, "b": row},
         np.where(cond != 0, f64(a), f64(row)), tolerance=EXACT)
cond_col = np.array([[1], [0], [1]], dtype=np.float32)
add_case("where_column_mask_3x1", "where", {"condition": cond_col, "a": a, "b": r},
         np.where(cond_col != 0, f64(a), f64(r)), tolerance=EXACT)
mask = (rng.random((3, 5)) < 0.4).astype(np.float32)
add_case("masked_fill_2x3x5_mask_3x5", "maskedFill", {"x": a, "mask": mask},
         np.where(mask != 0, -10000.0, f64(a)), tolerance=EXACT, params={"value": -10000.0})

oh = np.array([[0, 4, 2], [4, 1, 3]], dtype=np.int32)
add_case("one_hot_2x3_classes_5", "oneHot", {"index": oh}, np.eye(5)[oh], tolerance=EXACT, params={"classes": 5})

# Shape and layout.
p = randn(2, 3, 4)
add_case("permute_2x3x4_to_4x2x3", "permute", {"x": p}, np.transpose(f64(p), (2, 0, 1)), tolerance=EXACT,
         params={"order": [2, 0, 1]})
add_case("transpose_axes0and2_2x3x4", "transpose", {"x": p}, np.swapaxes(f64(p), 0, 2), tolerance=EXACT,
         params={"axes": [0, 2]})
add_case("transpose_last_two_2x3x4", "transpose", {"x": p}, np.swapaxes(f64(p), -2, -1), tolerance=EXACT,
         params={"axes": [-2, -1]})
c1, c2 = randn(2, 1, 5), randn(2, 2, 5)
add_case("concat_three_axis1", "concat", {"a": r, "b": c1, "c": c2},
         np.concatenate([f64(r), f64(c1), f64(c2)], axis=1), tolerance=EXACT, params={"axis": 1})
c3 = randn(2, 3, 2)
add_case("concat_two_last_axis", "concat", {"a": r, "b": c3}, np.concatenate([f64(r), f64(c3)], axis=-1),
         tolerance=EXACT, params={"axis": -1})
pieces = np.split(f64(r), [2, 3], axis=-1)
add_case("split_last_axis_2_1_2", "split", {"x": r}, pieces[0], tolerance=EXACT,
         params={"sizes": [2, 1, 2], "axis": -1}, extra_outputs=pieces[1:])
rows_ = np.split(f64(xe), [3], axis=0)
add_case("split_axis0_3_1_of_4x7", "split", {"x": xe}, rows_[0], tolerance=EXACT,
         params={"sizes": [3, 1], "axis": 0}, extra_outputs=rows_[1:])
add_case("slice_axis1_start1_length2", "slice", {"x": r}, f64(r)[:, 1:3, :], tolerance=EXACT,
         params={"axis": 1, "start": 1, "length": 2})
add_case("slice_last_axis_start3_length2", "slice", {"x": r}, f64(r)[..., 3:5], tolerance=EXACT,
         params={"axis": -1, "start": 3, "length": 2})

# dtype round trips: bit-exact.
bf_ties = f32_from_bits([
    0x3F808000,  # halfway, even neighbour below: rounds down
    0x3F818000,  # halfway, odd neighbour below: rounds up
    0x3F807FFF,  # just below halfway
    0x3F808001,  # just above halfway
    0xBF818000,  # negative halfway: rounds away to even
    0x3FFFFFFF,  # rounds up into the next exponent
    0x00012345,  # float32 subnormal
    0x7F7F0000,  # exactly representable large value
])
bf_x = np.concatenate([randn(24, scale=3.0), bf_ties, np.array([0.0, -0.0, 1.0, 3e38], dtype=np.float32)])
add_case("bfloat16_round_trip_ties_to_even", "castRoundTrip", {"x": bf_x}, bfloat16_round_trip(bf_x),
         tolerance=EXACT, params={"dtype": "bfloat16"})
assert np.all(np.isfinite(bfloat16_round_trip(bf_x)))
h_special = np.array([
    1 + 2 ** -11,        # halfway between 1 and 1 + 2^-10: rounds to even (1)
    1 + 3 * 2 ** -11,    # halfway: rounds up to even (1 + 2^-9)
    -(2 + 2 ** -10),     # negative halfway
    1e-5,                # float16 subnormal
    6.1035156e-05,       # near the smallest normal
    65504.0,             # largest finite float16
    -30000.7,
    1000.3,
], dtype=np.float32)
h_x = np.concatenate([randn(24, scale=3.0), h_special])
h_ref = h_x.astype(np.float16).astype(np.float32)
assert np.all(np.isfinite(h_ref))
add_case("float16_round_trip", "castRoundTrip", {"x": h_x}, h_ref, tolerance=EXACT, params={"dtype": "float16"})


# MARK: - Write

os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
with open(OUT_PATH, "w") as f:
    json.dump({"cases": cases}, f, separators=(",", ":"), allow_nan=False)
    f.write("\n")
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT_PATH)} ({os.path.getsize(OUT_PATH)} bytes)")
