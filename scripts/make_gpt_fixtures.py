#!/usr/bin/env python3
"""PyTorch reference for Nanodecoder's dense GPT: loss, logits, gradients and one AdamW step.

Writes Tests/NanoTrainingTests/Fixtures/gpt_tiny.safetensors, which the Swift tests load to
check the model's forward pass, backward pass and optimizer step against an independent
implementation. The output is committed; rerun only when this script changes.

Run from anywhere (Python 3.11 on the PATH):

    python3 scripts/make_gpt_fixtures.py

The script needs torch, numpy and safetensors. It keeps them in the git-ignored virtual
environment .venv at the repository root: when started outside that environment it creates
.venv if missing, installs the packages if they cannot be imported (torch from the CPU wheel in
/opt/wheels when present, override with $TORCH_WHEEL; numpy and safetensors from PyPI) and
re-executes itself under .venv/bin/python.

Model (GPT-2 / nanoGPT layout, pre-LayerNorm, no dropout, LM head tied to the token embedding):

    x      = tokenEmbedding[idx] + positionEmbedding[0..<T]
    block  : x = x + attention.proj(causalSelfAttention(attention.qkv(norm1(x))))
             x = x + mlp.proj(gelu_tanh(mlp.fc(norm2(x))))
    logits = finalNorm(x) @ tokenEmbedding.weight^T
    loss   = mean cross-entropy over all B*T positions

Linear weights use PyTorch's [out, in] layout. attention.qkv rows 0..<C are the query, C..<2C
the key, 2C..<3C the value; within each, head h owns rows h*D..<(h+1)*D (D = C / n_head).
Attention scores are scaled by 1/sqrt(D) and causally masked. LayerNorm eps is 1e-5.

Parameters are drawn in float32 (the values stored in the file) and the reference is computed
in float64 from exactly those float32 values; results are rounded to float32 when stored.

File contents (all float32 unless noted):
    <name>             every parameter, under the names listed in PARAM_SHAPES
    input.tokens       int32 [B, T]
    input.targets      int32 [B, T]
    expected.loss      [1]
    expected.logits    [B, T, vocab]
    grad.<name>        d loss / d parameter. The tied tokenEmbedding.weight is a single tensor
                       used twice, so its gradient is the sum of the embedding-lookup gradient
                       (rows of the tokens that occur) and the LM-head gradient (all rows).
    adamw.<name>       parameters after one torch.optim.AdamW step from the stored parameters
                       and gradients (float64): lr 1e-3, betas (0.9, 0.99), eps 1e-8, decoupled
                       weight decay 0.1 on parameters with dim >= 2 (matrices, embeddings), 0 on
                       biases and LayerNorm parameters.
    __metadata__       config, optimizer hyperparameters, seeds, torch version (strings).
                       The JSON header is rewritten with sorted keys so the file is
                       byte-identical from run to run.

Notes for the Swift tests:
  * The key slice of each attention.qkv.bias gradient (entries C..<2C) is zero in exact
    arithmetic: adding a constant to every key adds the same q.b to each score in a softmax row.
    The stored values are float64 rounding noise (~1e-20); a float32 backward pass gives ~1e-12
    or more. Compare gradients with an absolute tolerance, never a relative one.
  * Because Adam normalises by |g| + eps, the AdamW step on those noise gradients is
    ~lr * g / (|g| + 1e-8): check the optimizer by feeding it the stored grad.<name> tensors
    rather than gradients from the Swift backward pass (which could move those entries by up
    to ~lr / 2 against a stored change of ~0).
  * At the end the script reloads the file and prints how far a float32 torch run lands from the
    stored float64-derived values (a guide for tolerances).
"""

import os
import sys

REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT_PATH = os.path.join(REPO_ROOT, "Tests", "NanoTrainingTests", "Fixtures", "gpt_tiny.safetensors")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from venv_bootstrap import reexec_in_venv
    reexec_in_venv(".venv", {"torch": "torch", "numpy": "numpy", "safetensors": "safetensors"})

import json  # noqa: E402
import math  # noqa: E402
import struct  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

# MARK: - Configuration

VOCAB_SIZE = 13
BLOCK_SIZE = 8
N_LAYER = 2
N_HEAD = 2
N_EMBD = 16
HEAD_DIM = N_EMBD // N_HEAD
LN_EPS = 1e-5
BATCH = 2
SEQ = BLOCK_SIZE

PARAM_SEED = 0
DATA_SEED = 1

LR = 1e-3
BETAS = (0.9, 0.99)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.1


def param_shapes():
    """Parameter names (ours) and shapes, in a fixed order that also fixes the random draws."""
    C = N_EMBD
    shapes = [("tokenEmbedding.weight", (VOCAB_SIZE, C)),
              ("positionEmbedding.weight", (BLOCK_SIZE, C))]
    for i in range(N_LAYER):
        p = f"blocks.{i}."
        shapes += [(p + "norm1.weight", (C,)), (p + "norm1.bias", (C,)),
                   (p + "attention.qkv.weight", (3 * C, C)), (p + "attention.qkv.bias", (3 * C,)),
                   (p + "attention.proj.weight", (C, C)), (p + "attention.proj.bias", (C,)),
                   (p + "norm2.weight", (C,)), (p + "norm2.bias", (C,)),
                   (p + "mlp.fc.weight", (4 * C, C)), (p + "mlp.fc.bias", (4 * C,)),
                   (p + "mlp.proj.weight", (C, 4 * C)), (p + "mlp.proj.bias", (C,))]
    shapes += [("finalNorm.weight", (C,)), ("finalNorm.bias", (C,))]
    return shapes


PARAM_SHAPES = param_shapes()


def is_layer_norm(name):
    return "norm" in name.split(".")[-2].lower()


def init_params():
    """float32 parameters at a generic point: nothing zero, LayerNorm gains near (not at) 1."""
    torch.manual_seed(PARAM_SEED)
    params = {}
    for name, shape in PARAM_SHAPES:
        r = torch.randn(shape, dtype=torch.float32)
        if is_layer_norm(name):
            params[name] = (1.0 + 0.1 * r) if name.endswith(".weight") else 0.1 * r
        else:
            params[name] = 0.02 * r  # weights, embeddings and linear biases alike
    return params


def make_inputs():
    g = torch.Generator().manual_seed(DATA_SEED)
    tokens = torch.randint(0, VOCAB_SIZE, (BATCH, SEQ), generator=g, dtype=torch.int64)
    targets = torch.randint(0, VOCAB_SIZE, (BATCH, SEQ), generator=g, dtype=torch.int64)
    return tokens.to(torch.int32), targets.to(torch.int32)


# MARK: - Reference model (written out op by op on a flat name -> tensor dict)

def layer_norm(x, weight, bias):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance, as LayerNorm uses
    return (x - mean) / torch.sqrt(var + LN_EPS) * weight + bias


def linear(x, weight, bias):
    return x @ weight.t() + bias


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def causal_self_attention(x, P, prefix):
    B, T, C = x.shape
    qkv = linear(x, P[prefix + "qkv.weight"], P[prefix + "qkv.bias"])  # [B, T, 3C]
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]

    def heads(t):  # [B, T, C] -> [B, H, T, D]; head h = channels h*D..<(h+1)*D
        return t.reshape(B, T, N_HEAD, HEAD_DIM).permute(0, 2, 1, 3)

    q, k, v = heads(q), heads(k), heads(v)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(HEAD_DIM)  # [B, H, T, T]
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v  # [B, H, T, D]
    y = y.permute(0, 2, 1, 3).reshape(B, T, C)
    return linear(y, P[prefix + "proj.weight"], P[prefix + "proj.bias"])


def forward(P, tokens):
    """Logits [B, T, vocab] from the parameter dict P."""
    B, T = tokens.shape
    idx = tokens.long()
    x = P["tokenEmbedding.weight"][idx] + P["positionEmbedding.weight"][:T]
    for i in range(N_LAYER):
        p = f"blocks.{i}."
        x = x + causal_self_attention(layer_norm(x, P[p + "norm1.weight"], P[p + "norm1.bias"]),
                                      P, p + "attention.")
        h = layer_norm(x, P[p + "norm2.weight"], P[p + "norm2.bias"])
        h = linear(gelu_tanh(linear(h, P[p + "mlp.fc.weight"], P[p + "mlp.fc.bias"])),
                   P[p + "mlp.proj.weight"], P[p + "mlp.proj.bias"])
        x = x + h
    x = layer_norm(x, P["finalNorm.weight"], P["finalNorm.bias"])
    return x @ P["tokenEmbedding.weight"].t()  # tied LM head


def cross_entropy(logits, targets):
    logp = torch.log_softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)
    picked = logp.gather(1, targets.long().reshape(-1, 1))
    return -picked.mean()


def loss_and_grads(params, tokens, targets, dtype):
    """Loss, logits and gradients with every parameter cast to dtype (one leaf per name, so the
    tied embedding's two uses accumulate into one gradient)."""
    P = {n: t.detach().to(dtype).clone().requires_grad_(True) for n, t in params.items()}
    logits = forward(P, tokens)
    loss = cross_entropy(logits, targets)
    loss.backward()
    return loss.detach(), logits.detach(), {n: P[n].grad.detach() for n in P}


def adamw_step(params, grads, dtype):
    """One torch.optim.AdamW step; decay only on parameters with dim >= 2."""
    P = {n: torch.nn.Parameter(params[n].detach().to(dtype).clone()) for n in params}
    for n in P:
        P[n].grad = grads[n].detach().to(dtype).clone()
    decay = [P[n] for n in P if P[n].dim() >= 2]
    no_decay = [P[n] for n in P if P[n].dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=ADAM_EPS, foreach=False)
    opt.step()
    return {n: P[n].detach() for n in P}


def independent_checks(params, tokens, targets, loss, logits, grads):
    """Cross-check the hand-written model against torch's built-in modules and F.cross_entropy."""
    P = {n: t.double() for n, t in params.items()}
    ln = torch.nn.LayerNorm(N_EMBD, eps=LN_EPS).double()
    with torch.no_grad():
        ln.weight.copy_(P["blocks.0.norm1.weight"]); ln.bias.copy_(P["blocks.0.norm1.bias"])
    x = torch.randn(3, N_EMBD, dtype=torch.float64)
    assert torch.allclose(ln(x), layer_norm(x, ln.weight, ln.bias), atol=1e-12)
    assert torch.allclose(F.gelu(x, approximate="tanh"), gelu_tanh(x), atol=1e-14)

    # Attention via scaled_dot_product_attention.
    xa = torch.randn(BATCH, SEQ, N_EMBD, dtype=torch.float64)
    p = "blocks.1.attention."
    qkv = F.linear(xa, P[p + "qkv.weight"], P[p + "qkv.bias"])
    q, k, v = qkv.split(N_EMBD, dim=2)
    q, k, v = (t.view(BATCH, SEQ, N_HEAD, HEAD_DIM).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    y = F.linear(y.transpose(1, 2).reshape(BATCH, SEQ, N_EMBD), P[p + "proj.weight"], P[p + "proj.bias"])
    assert torch.allclose(y, causal_self_attention(xa, P, p), atol=1e-13)

    ce = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets.long().reshape(-1))
    assert abs(ce.item() - loss.item()) < 1e-13

    # Finite-difference spot checks of a few gradient entries.
    probes = [("tokenEmbedding.weight", (int(tokens[0, 0]), 3)),
              ("tokenEmbedding.weight", (next(t for t in range(VOCAB_SIZE)
                                              if t not in set(tokens.flatten().tolist())), 5)),
              ("positionEmbedding.weight", (7, 0)), ("blocks.0.attention.qkv.weight", (20, 4)),
              ("blocks.1.attention.qkv.bias", (40,)), ("blocks.1.mlp.fc.bias", (63,)),
              ("blocks.0.norm2.weight", (9,)), ("finalNorm.bias", (2,))]
    h = 1e-6
    for name, index in probes:
        def f(delta):
            Q = dict(P)
            Q[name] = P[name].clone()
            Q[name][index] += delta
            return cross_entropy(forward(Q, tokens), targets).item()
        fd = (f(h) - f(-h)) / (2 * h)
        g = grads[name][index].item()
        assert abs(fd - g) <= 1e-8 + 1e-6 * abs(g), (name, index, fd, g)


# MARK: - Main

def main():
    torch.set_grad_enabled(True)
    params = init_params()
    tokens, targets = make_inputs()
    assert list(params) == [n for n, _ in PARAM_SHAPES]
    for name, shape in PARAM_SHAPES:
        assert tuple(params[name].shape) == shape, name

    loss, logits, grads = loss_and_grads(params, tokens, targets, torch.float64)
    independent_checks(params, tokens, targets, loss, logits, grads)
    updated = adamw_step(params, grads, torch.float64)

    tensors = {}
    for name, _ in PARAM_SHAPES:
        tensors[name] = params[name].contiguous()
    tensors["input.tokens"] = tokens.contiguous()
    tensors["input.targets"] = targets.contiguous()
    tensors["expected.loss"] = loss.reshape(1).to(torch.float32)
    tensors["expected.logits"] = logits.to(torch.float32).contiguous()
    for name, _ in PARAM_SHAPES:
        tensors["grad." + name] = grads[name].to(torch.float32).contiguous()
    for name, _ in PARAM_SHAPES:
        tensors["adamw." + name] = updated[name].to(torch.float32).contiguous()

    metadata = {
        "format": "nanodecoder-gpt-fixture-v1",
        "generator": "scripts/make_gpt_fixtures.py",
        "torch_version": torch.__version__,
        "vocab_size": str(VOCAB_SIZE), "block_size": str(BLOCK_SIZE), "n_layer": str(N_LAYER),
        "n_head": str(N_HEAD), "n_embd": str(N_EMBD), "bias": "true", "dropout": "0.0",
        "tied_lm_head": "true", "layer_norm_eps": repr(LN_EPS), "gelu": "tanh",
        "batch_size": str(BATCH), "seq_len": str(SEQ),
        "param_seed": str(PARAM_SEED), "data_seed": str(DATA_SEED),
        "reference_dtype": "float64",
        "optimizer": "torch.optim.AdamW", "lr": repr(LR), "beta1": repr(BETAS[0]),
        "beta2": repr(BETAS[1]), "adam_eps": repr(ADAM_EPS), "weight_decay": repr(WEIGHT_DECAY),
        "weight_decay_applies_to": "parameters with dim >= 2 (matrices, embeddings)",
        "adamw_step": "1",
        "loss": repr(loss.item()),
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    save_file(tensors, OUT_PATH, metadata=metadata)
    canonicalize_header(OUT_PATH)

    verify(params, tokens, targets, loss, grads, updated)


def canonicalize_header(path):
    """Rewrite the JSON header with sorted keys so reruns give byte-identical files.

    safetensors writes __metadata__ in hash-map order, which changes from run to run. The tensor
    data and offsets are untouched; the header is re-padded with spaces to a multiple of 8 bytes
    as the format allows.
    """
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def verify(params, tokens, targets, loss64, grads64, updated64):
    """Reload the file, print a summary and show how far float32 arithmetic lands from it."""
    from safetensors import safe_open
    loaded = load_file(OUT_PATH)
    with safe_open(OUT_PATH, framework="pt") as f:
        meta = f.metadata()
    print(f"wrote {os.path.relpath(OUT_PATH, REPO_ROOT)} ({os.path.getsize(OUT_PATH)} bytes)")
    print("metadata:", ", ".join(f"{k}={meta[k]}" for k in sorted(meta)))
    for name in sorted(loaded):
        t = loaded[name]
        print(f"  {name:44s} {str(t.dtype):14s} {list(t.shape)}")
    print(f"expected.loss = {loaded['expected.loss'].item():.9f} (float64 {loss64.item():.17g})")

    expected_names = ({n for n, _ in PARAM_SHAPES}
                      | {"grad." + n for n, _ in PARAM_SHAPES}
                      | {"adamw." + n for n, _ in PARAM_SHAPES}
                      | {"input.tokens", "input.targets", "expected.loss", "expected.logits"})
    assert set(loaded) == expected_names
    for n, _ in PARAM_SHAPES:
        assert torch.equal(loaded[n], params[n])
        assert loaded[n].dtype == torch.float32
    assert torch.equal(loaded["input.tokens"], tokens) and loaded["input.tokens"].dtype == torch.int32
    assert torch.equal(loaded["input.targets"], targets)

    # A float32 run of the same model, for choosing tolerances on the Swift side.
    P32 = {n: loaded[n] for n, _ in PARAM_SHAPES}
    loss32, logits32, grads32 = loss_and_grads(P32, loaded["input.tokens"], loaded["input.targets"],
                                               torch.float32)
    print(f"float32 torch vs stored: |loss| {abs(loss32.item() - loaded['expected.loss'].item()):.2e}, "
          f"max |logits| {(logits32 - loaded['expected.logits']).abs().max().item():.2e}, "
          f"max |grad| {max((grads32[n] - loaded['grad.' + n]).abs().max().item() for n in P32):.2e}")
    upd32 = adamw_step(P32, {n: loaded["grad." + n] for n in P32}, torch.float32)
    print(f"float32 AdamW from stored grads vs stored: max |param| "
          f"{max((upd32[n] - loaded['adamw.' + n]).abs().max().item() for n in P32):.2e}")
    upd_from32 = adamw_step(P32, grads32, torch.float64)
    print(f"AdamW from float32-computed grads vs stored: max |param| "
          f"{max((upd_from32[n] - loaded['adamw.' + n]).abs().max().item() for n in P32):.2e}")
    gmin = min(grads64[n].abs().min().item() for n in grads64)
    print(f"smallest |grad| entry: {gmin:.3e}; largest: "
          f"{max(grads64[n].abs().max().item() for n in grads64):.3e}")
    step = {n: (updated64[n] - params[n].double()).abs().max().item() for n in params}
    print(f"largest AdamW change: {max(step.values()):.3e} (lr {LR})")


if __name__ == "__main__":
    main()
