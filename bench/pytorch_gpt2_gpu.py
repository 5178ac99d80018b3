#!/usr/bin/env python3
"""PyTorch peer of `nanodecoder bench train --workload GPT2 --device cuda`: GPT-2 124M training
steps on one NVIDIA GPU, with torch.compile, bf16 autocast and fused AdamW (nanoGPT's fast path).

    python3 bench/pytorch_gpt2_gpu.py --batch 16 --steps 20           # bf16 autocast, compiled
    python3 bench/pytorch_gpt2_gpu.py --precision fp32 --tf32 --no-compile

Same model as Nanodecoder's dense GPT (pre-norm blocks, GELU-tanh MLP, biases, LM head tied to the
token embedding, dropout 0), 12 layers x 12 heads x 768, block 1024, vocabulary padded to 50304;
AdamW lr 6e-4, betas (0.9, 0.95), weight decay 0.1 on matrices, gradients clipped to 1.0.
Tokens are random (uniform over the vocabulary): the cost of a step does not depend on them.

Reports the median step time over --steps after --warmup steps (compilation happens in warm-up),
tokens/s, and MFU = 6·N + 12·L·C·T FLOPs per token (N: parameters without the position
embedding, as nanoGPT counts them; the tied LM head is a real GEMM) times tokens/s over --peak-tflops
(default 989: H100 SXM dense bf16). Needs only torch (the GPU machine's own install).
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.out = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.out(F.gelu(self.fc(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, heads, width, block, vocab):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(block, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.norm(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--tf32", action="store_true", help="fp32 matmuls on TF32 tensor cores")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.manual_seed(1337)
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    layers, heads, width, block, vocab = 12, 12, 768, 1024, 50304
    model = GPT(layers, heads, width, block, vocab).cuda()
    decay = [q for q in model.parameters() if q.dim() >= 2]
    rest = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    step_model = model if a.no_compile else torch.compile(model)
    n = sum(q.numel() for q in model.parameters()) - model.wpe.weight.numel()
    flops_per_token = 6 * n + 12 * layers * width * block
    times = []
    for step in range(a.warmup + a.steps):
        x = torch.randint(0, vocab, (a.batch, block), device="cuda")
        y = torch.randint(0, vocab, (a.batch, block), device="cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(dt)
        print(f"{'warmup' if step < a.warmup else 'timed'} step {step}: loss {value:.4f}, {dt * 1000:.1f} ms", flush=True)
    median = statistics.median(times)
    tokens = a.batch * block / median
    mfu = flops_per_token * tokens / (a.peak_tflops * 1e12)
    result = {"impl": "pytorch" + ("" if a.no_compile else "-compile"), "precision": a.precision, "tf32": a.tf32,
              "batch": a.batch, "ms_per_step": median * 1000, "tokens_per_s": tokens, "mfu": mfu,
              "flops_per_token": flops_per_token, "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9,
              "torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
    print(json.dumps(result) if a.json else
          f"median {median * 1000:.1f} ms/step, {tokens:.0f} tokens/s, MFU {100 * mfu:.1f}% "
          f"(6N+12LCT = {flops_per_token / 1e6:.0f} MFLOP/token), peak memory {result['peak_memory_gb']:.1f} GB")


if __name__ == "__main__":
    main()
