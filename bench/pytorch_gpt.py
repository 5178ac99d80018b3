#!/usr/bin/env python3
"""PyTorch side of the CPU training benchmark: the same models, data and optimizer as Nanodecoder.

Trains Nanodecoder's dense GPT (or its MoE GPT) on character-level tiny Shakespeare for a few
steps on the CPU and reports the median step time, tokens/s, achieved GFLOP/s, MFU, peak RSS and
the final loss, so that the numbers sit next to `nanodecoder train` on the same workload.

Run from anywhere (Python 3.11 on the PATH):

    python3 bench/pytorch_gpt.py --workload A            # human-readable lines
    python3 bench/pytorch_gpt.py --workload B --json     # one JSON object on stdout
    python3 bench/pytorch_gpt.py --workload C --steps 50 --threads 8
    python3 bench/pytorch_gpt.py --workload A --autocast bf16

The script needs torch and numpy. It keeps them in the git-ignored virtual environment
.venv-bench at the repository root: when started outside that environment it creates it if
missing, installs the packages if they cannot be imported (torch from the CPU wheel in
/opt/wheels when present, override with $TORCH_WHEEL; otherwise `torch` from PyPI, and numpy
from PyPI) and re-executes itself under .venv-bench/bin/python.

Workloads (dropout 0, biases on, LM head tied to the token embedding, vocabulary 65 chars):
    A  n_layer 4, n_head 4, n_embd 128, block 64,  batch 12   (configs/shakespeare-char.yaml shape)
    B  n_layer 6, n_head 6, n_embd 384, block 256, batch 16
    C  B's shape with MoE layers: 8 experts, top-2, stride 2 (blocks 0, 2, 4 as in
       MoEConfig.isMoE: i % stride == 0), train capacity 1.25, min capacity 4

Model, as in Sources/NanoModels/DenseGPT.swift:
    x      = tokenEmbedding[idx] + positionEmbedding[0..<T]
    block  : x = x + attention.proj(causal_sdpa(attention.qkv(norm1(x))))
             x = x + mlp.proj(gelu_tanh(mlp.fc(norm2(x))))        (or the MoE layer)
    logits = finalNorm(x) @ tokenEmbedding.weight^T
    loss   = mean cross-entropy (+ 0.01 * Σ aux + 0.001 * Σ z for MoE)
GPT-2 initialisation: weights and embeddings N(0, 0.02), residual projections (attention.proj,
mlp.proj, expert proj) N(0, 0.02 / sqrt(2 * n_layer)), biases 0, LayerNorm 1 / 0 (eps 1e-5).
Workload C follows configs/shakespeare-char-moe.yaml (use_switch_tfm_init: true): every matrix
except the embeddings, and the expert weights, from a truncated normal with std sqrt(1 / fan_in)
cut at ±2σ. Initialisation does not change the cost of a step.

MoE layer, as in Sources/NanoModels/MoE.swift (Switch Transformer / ST-MoE):
    router logits = x W^T (no bias, float32 even under autocast); top-k experts per token;
    gates = softmax over the k chosen logits (MoEConfig.renormalizeGates false; for k > 1 the
    same numbers as the full softmax renormalised over the chosen k; for k = 1 the full-softmax
    probability of the chosen expert);
    capacity = max(min_capacity, ceil(top_k * capacity_factor * N / n_exp)) slots per expert;
    assignments take slots in priority order: every token's first choice (by position), then
    every token's second choice, ...; an assignment past its expert's capacity is dropped
    (its token then gets less or no expert output; the residual carries it);
    experts: GELU MLPs with biases, weights stored fc [E, C, 4C], proj [E, 4C, C].
    aux loss = n_exp * Σ_e f_e * P_e, f_e = fraction of the N * k choices (before dropping, no
    gradient) that went to expert e, P_e = mean router probability of e (Switch eq. 4);
    z loss = mean over tokens of logsumexp(router logits)^2 (ST-MoE eq. 5).
The slot of each assignment comes from a cumulative sum over the one-hot choices in priority
order; kept rows are scattered into an [E, capacity, C] buffer, the experts run as two batched
matmuls (torch.baddbmm) over it, and the outputs are gathered back, weighted by the gates and
summed per token. Nanodecoder runs only the kept rows (a grouped matmul over exactly the routed
rows); the padded buffer here does up to capacity_factor times the expert arithmetic of the
routed rows. That padding is the usual PyTorch price and is not counted in the FLOPs below.

Optimizer: torch.optim.AdamW, lr 1e-3 (constant), betas (0.9, 0.99), eps 1e-8, weight decay
0.1 on parameters with dim >= 2 (matrices, embeddings, expert weights, router) and 0 on the rest,
fused=False and foreach left at its default; gradients clipped to norm 1.0 every step.

Data: the text file (--data, default ../shared/data/tinyshakespeare.txt from the repository
root), its sorted set of characters as the vocabulary, and random windows of block_size + 1
tokens drawn with numpy.random.default_rng(--seed) over the whole file.

Measurements:
    step time   wall clock of one whole step (batch draw, forward, backward, clipping, AdamW
                update and reading the loss), over --steps timed steps after --warmup steps
    ms/step     median step time;  tokens/s = batch * block_size / median step time
    FLOPs/token 6 * N + 12 * n_layer * n_embd * block_size, N = non-embedding parameters (token
                and position embeddings excluded, as Nanodecoder's TrainingTask.flopsPerToken);
                for MoE N counts the active parameters: each MoE layer's expert weights and
                biases times top_k / n_exp (integer division as in MoEGPT.activeParameterCount)
    GFLOP/s     FLOPs/token * tokens/s;  MFU = GFLOP/s / --peak-gflops, by default the best of 5
                float32 1024x1024x1024 torch.matmul calls in this process at the same threads
    peak RSS    resource.getrusage(RUSAGE_SELF).ru_maxrss (the whole process, in MB)
    loss        the LM cross-entropy of the last timed step (what `nanodecoder train` logs);
                the first step's loss is printed too (about ln 65 = 4.17 at initialisation)
"""

import os
import sys

REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_DATA = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "tinyshakespeare.txt"))


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
    from venv_bootstrap import reexec_in_venv
    reexec_in_venv(".venv-bench", {"torch": "torch", "numpy": "numpy"})

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# MARK: - Configuration


@dataclass
class MoESettings:
    n_exp: int = 8
    top_k: int = 2
    stride: int = 2
    train_capacity: float = 1.25
    min_capacity: int = 4
    aux_loss_weight: float = 0.01
    router_z_loss_weight: float = 0.001
    switch_init_scale: float = 1.0   # use_switch_tfm_init: true in configs/shakespeare-char-moe.yaml

    def is_moe(self, block):
        """Block i holds an MoE layer when i % stride == 0 (MoEConfig.isMoE)."""
        return block % self.stride == 0

    def capacity(self, tokens):
        """Slots per expert while training (MoEConfig.capacity)."""
        return max(self.min_capacity, math.ceil(self.top_k * self.train_capacity * tokens / self.n_exp))


@dataclass
class Workload:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    moe: MoESettings | None = None
    vocab_size: int = 65
    ln_eps: float = 1e-5


WORKLOADS = {
    "A": Workload(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12),
    "B": Workload(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=16),
    "C": Workload(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=16, moe=MoESettings()),
}

LR = 1e-3
BETAS = (0.9, 0.99)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.1
GRAD_CLIP = 1.0

# MARK: - Model


class SelfAttention(nn.Module):
    def __init__(self, w: Workload):
        super().__init__()
        self.n_head = w.n_head
        self.qkv = nn.Linear(w.n_embd, 3 * w.n_embd)
        self.proj = nn.Linear(w.n_embd, w.n_embd)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class FeedForward(nn.Module):
    def __init__(self, w: Workload):
        super().__init__()
        self.fc = nn.Linear(w.n_embd, 4 * w.n_embd)
        self.proj = nn.Linear(4 * w.n_embd, w.n_embd)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class MixtureOfExperts(nn.Module):
    """Router plus n_exp GELU MLPs run as batched matmuls over an [E, capacity, C] buffer."""

    def __init__(self, w: Workload):
        super().__init__()
        m = w.moe
        self.settings = m
        c, h = w.n_embd, 4 * w.n_embd
        self.router = nn.Linear(c, m.n_exp, bias=False)
        self.fc = nn.Parameter(torch.empty(m.n_exp, c, h))
        self.fc_bias = nn.Parameter(torch.zeros(m.n_exp, h))
        self.proj = nn.Parameter(torch.empty(m.n_exp, h, c))
        self.proj_bias = nn.Parameter(torch.zeros(m.n_exp, c))

    def expert_parameter_count(self):
        return sum(p.numel() for p in (self.fc, self.fc_bias, self.proj, self.proj_bias))

    def forward(self, x):
        m = self.settings
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        n, c, e, k = flat.shape[0], flat.shape[1], m.n_exp, m.top_k

        # Route in float32 (routerUseFullPrec).
        with torch.autocast("cpu", enabled=False):
            logits = F.linear(flat.float(), self.router.weight.float())          # [N, E]
        probs = logits.softmax(dim=-1)
        top_logits, top_experts = logits.topk(k, dim=-1)                        # [N, k]
        if k == 1:
            gates = probs.gather(1, top_experts)
        else:
            gates = top_logits.softmax(dim=-1)

        # Slots: assignments in priority order (all first choices by position, then all second
        # choices, ...), a running count per expert gives each one its slot in that expert.
        capacity = m.capacity(n)
        choice = top_experts.t().reshape(-1)                                    # [k*N], a = j*N + t
        one_hot = F.one_hot(choice, e)                                          # [k*N, E]
        slot = (one_hot.cumsum(dim=0) * one_hot).sum(dim=1) - 1                 # [k*N]
        kept = (slot < capacity).nonzero().squeeze(1)                           # assignment ids
        token = kept % n
        index = choice[kept] * capacity + slot[kept]                            # row in [E*cap]

        # Dispatch, run every expert on its [capacity, C] block, combine.
        buffer = flat.new_zeros(e * capacity, c).index_copy(0, index, flat.index_select(0, token))
        buffer = buffer.view(e, capacity, c)
        hidden = F.gelu(torch.baddbmm(self.fc_bias.unsqueeze(1), buffer, self.fc), approximate="tanh")
        out = torch.baddbmm(self.proj_bias.unsqueeze(1), hidden, self.proj).view(e * capacity, c)
        weight = gates.t().reshape(-1).index_select(0, kept).unsqueeze(1)       # [kept, 1]
        rows = out.index_select(0, index) * weight.to(out.dtype)
        output = flat.new_zeros(n, c, dtype=rows.dtype).index_add(0, token, rows)

        # Switch load-balancing loss and router z-loss (unweighted here).
        with torch.no_grad():
            f = torch.bincount(choice, minlength=e).float() / (n * k)
        aux = e * (probs.mean(dim=0) * f).sum()
        z = torch.logsumexp(logits, dim=-1).square().mean()
        dropped = 1.0 - kept.numel() / (n * k)                                  # fraction of assignments
        return output.view(shape).to(x.dtype), aux, z, dropped


class Block(nn.Module):
    def __init__(self, w: Workload, experts: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(w.n_embd, eps=w.ln_eps)
        self.attention = SelfAttention(w)
        self.norm2 = nn.LayerNorm(w.n_embd, eps=w.ln_eps)
        self.ffn = MixtureOfExperts(w) if experts else FeedForward(w)

    def forward(self, x, extras):
        x = x + self.attention(self.norm1(x))
        if isinstance(self.ffn, MixtureOfExperts):
            y, aux, z, dropped = self.ffn(self.norm2(x))
            extras.append((aux, z, dropped))
            return x + y
        return x + self.ffn(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, w: Workload):
        super().__init__()
        self.workload = w
        self.token_embedding = nn.Embedding(w.vocab_size, w.n_embd)
        self.position_embedding = nn.Embedding(w.block_size, w.n_embd)
        self.blocks = nn.ModuleList(Block(w, experts=w.moe is not None and w.moe.is_moe(i))
                                    for i in range(w.n_layer))
        self.final_norm = nn.LayerNorm(w.n_embd, eps=w.ln_eps)
        self.initialize()

    @torch.no_grad()
    def initialize(self):
        w = self.workload
        residual_std = 0.02 / math.sqrt(2 * w.n_layer)
        for name, p in self.named_parameters():
            if "norm" in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            elif "bias" in name:                              # Linear biases, expert biases [E, *]
                nn.init.zeros_(p)
            else:                                             # matrices, embeddings, expert weights
                is_residual = name.endswith(("attention.proj.weight", "ffn.proj.weight", "ffn.proj"))
                nn.init.normal_(p, 0.0, residual_std if is_residual else 0.02)
        if w.moe is not None and w.moe.switch_init_scale:
            # Switch Transformer initialisation for every weight matrix but the embeddings
            # (MoEGPT.switchInitialize, Experts.init): truncated normal, std sqrt(scale / fan_in), ±2σ.
            for name, p in self.named_parameters():
                if "embedding" in name or "norm" in name or "bias" in name:
                    continue
                fan_in = p.shape[1]                           # [out, in] Linear or [E, in, out] expert
                s = math.sqrt(w.moe.switch_init_scale / fan_in)
                nn.init.trunc_normal_(p, mean=0.0, std=s, a=-2 * s, b=2 * s)

    def forward(self, idx, targets):
        t = idx.shape[1]
        positions = torch.arange(t, device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(positions)
        extras = []
        for block in self.blocks:
            x = block(x, extras)
        self.dropped = [d for _, _, d in extras]              # per MoE layer, for the log
        logits = F.linear(self.final_norm(x), self.token_embedding.weight)
        lm = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
        total = lm
        if extras:
            m = self.workload.moe
            total = total + m.aux_loss_weight * sum(a for a, _, _ in extras) \
                + m.router_z_loss_weight * sum(z for _, z, _ in extras)
        return total, lm

    def parameter_counts(self):
        """(total, active, non-embedding active) as Nanodecoder counts them."""
        w = self.workload
        total = sum(p.numel() for p in self.parameters())
        idle = 0
        for block in self.blocks:
            if isinstance(block.ffn, MixtureOfExperts):
                idle += block.ffn.expert_parameter_count() * (w.moe.n_exp - w.moe.top_k) // w.moe.n_exp
        active = total - idle
        embeddings = self.token_embedding.weight.numel() + self.position_embedding.weight.numel()
        return total, active, active - embeddings


def flops_per_token(model):
    w = model.workload
    _, _, non_embedding = model.parameter_counts()
    return 6 * non_embedding + 12 * w.n_layer * w.n_embd * w.block_size

# MARK: - Data


class CharData:
    def __init__(self, path, seed):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.chars = sorted(set(text))
        lookup = {ch: i for i, ch in enumerate(self.chars)}
        self.tokens = np.array([lookup[ch] for ch in text], dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size, block_size):
        starts = self.rng.integers(0, len(self.tokens) - block_size - 1, size=batch_size)
        windows = np.stack([self.tokens[s:s + block_size + 1] for s in starts])
        windows = torch.from_numpy(windows)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

# MARK: - Benchmark


def measure_peak_gflops(repeats=5):
    """Best float32 1024^3 matmul rate (GFLOP/s) at the current thread count."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1024, 1024, generator=g)
    b = torch.randn(1024, 1024, generator=g)
    torch.matmul(a, b)                                        # warm the threads and caches
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * 1024 ** 3 / best / 1e9


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=ADAM_EPS, fused=False)


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch CPU training benchmark of Nanodecoder's GPT workloads.")
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="A")
    p.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all cores)")
    p.add_argument("--autocast", choices=["bf16"], default=None,
                   help="run forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up steps absorb compilation)")
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="peak for MFU (default: best of 5 float32 1024^3 matmuls, measured here)")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"text file (default {DEFAULT_DATA})")
    p.add_argument("--seed", type=int, default=1337, help="seed of the parameters and the batch windows")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--steps must be >= 1, --warmup >= 0, --threads >= 1")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    w = WORKLOADS[args.workload]
    data = CharData(args.data, args.seed)
    if len(data.chars) != w.vocab_size:
        say(f"note: {args.data} has {len(data.chars)} distinct characters; vocab_size set to that")
        w.vocab_size = len(data.chars)

    peak = args.peak_gflops if args.peak_gflops else measure_peak_gflops()
    model = GPT(w)
    total, active, non_embedding = model.parameter_counts()
    fpt = flops_per_token(model)
    optimizer = make_optimizer(model)
    step_model = torch.compile(model) if args.compile else model
    precision = "bf16-autocast" if args.autocast == "bf16" else "fp32"
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.autocast == "bf16" \
        else contextlib.nullcontext

    moe_text = ""
    if w.moe:
        m = w.moe
        moe_blocks = [i for i in range(w.n_layer) if m.is_moe(i)]
        moe_text = (f", MoE in blocks {moe_blocks}: {m.n_exp} experts, top-{m.top_k}, capacity "
                    f"{m.capacity(w.batch_size * w.block_size)} per expert (factor {m.train_capacity})")
    say(f"workload {args.workload}: n_layer {w.n_layer}, n_head {w.n_head}, n_embd {w.n_embd}, "
        f"block {w.block_size}, batch {w.batch_size}, vocab {w.vocab_size}{moe_text}")
    say(f"parameters: {total} total, {active} active, {non_embedding} active non-embedding; "
        f"{fpt / 1e6:.3f} MFLOP per token")
    say(f"torch {torch.__version__}, {args.threads} threads, {precision}{', compiled' if args.compile else ''}; "
        f"peak {'(given)' if args.peak_gflops else '(best fp32 1024^3 matmul)'} {peak:.1f} GFLOP/s")

    model.train()
    times, first_loss, last_loss, last_total = [], None, None, None
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        x, y = data.batch(w.batch_size, w.block_size)
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss, lm = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        lm_value, total_value = lm.item(), loss.item()
        seconds = time.perf_counter() - t0
        if step == 0:
            first_loss = lm_value
        if step >= args.warmup:
            times.append(seconds)
        last_loss, last_total = lm_value, total_value
        phase = "warmup" if step < args.warmup else "timed"
        extra = ""
        if w.moe:
            dropped = ", ".join(f"{100 * d:.1f}%" for d in getattr(model, "dropped", []))
            extra = f" (total {total_value:.4f}; dropped assignments per MoE layer: {dropped})"
        say(f"step {step} [{phase}]: loss {lm_value:.4f}{extra}, {seconds * 1000:.1f} ms")

    median = statistics.median(times)
    tokens_per_s = w.batch_size * w.block_size / median
    gflops = fpt * tokens_per_s / 1e9
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports KiB
    result = {
        "workload": args.workload, "impl": "pytorch", "precision": precision, "threads": args.threads,
        "ms_per_step": median * 1000, "tokens_per_s": tokens_per_s, "gflops": gflops, "mfu": gflops / peak,
        "peak_rss_mb": rss_mb, "loss": last_loss, "params_total": total, "params_active": active,
        "flops_per_token": fpt,
        # Extra context, not part of the common schema.
        "loss_step0": first_loss, "peak_gflops": peak, "steps": args.steps, "warmup": args.warmup,
        "compiled": args.compile, "torch": torch.__version__,
    }
    if w.moe:
        result["loss_total"] = last_total
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(f"result: {median * 1000:.1f} ms/step (median of {args.steps}), {tokens_per_s:.0f} tokens/s, "
              f"{gflops:.1f} GFLOP/s, MFU {100 * gflops / peak:.1f}% of {peak:.1f} GFLOP/s, "
              f"peak RSS {rss_mb:.0f} MB, loss {last_loss:.4f} (step 0: {first_loss:.4f})")


if __name__ == "__main__":
    main()
