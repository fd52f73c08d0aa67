"""A decoder-only transformer (nanoGPT-like): causal SDPA attention, pre-norm, tied embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from kubetrain.api.model import GPTArgs


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's cannot drop only the bias)."""

    def __init__(self, width: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, a: GPTArgs, dropout: float):
        super().__init__()
        self.heads, self.dropout = a.heads, dropout
        self.c_attn = nn.Linear(a.width, 3 * a.width, bias=a.bias)
        self.c_proj = nn.Linear(a.width, a.width, bias=a.bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c)))


class Block(nn.Module):
    def __init__(self, a: GPTArgs, dropout: float):
        super().__init__()
        self.ln_1 = LayerNorm(a.width, a.bias)
        self.attn = CausalSelfAttention(a, dropout)
        self.ln_2 = LayerNorm(a.width, a.bias)
        self.mlp = nn.Sequential(
            nn.Linear(a.width, 4 * a.width, bias=a.bias), nn.GELU(),
            nn.Linear(4 * a.width, a.width, bias=a.bias), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def residual_projections(self) -> list[nn.Linear]:
        """The layers that write into the residual stream (attention out, MLP out)."""
        return [self.attn.c_proj, self.mlp[2]]


class GPT(nn.Module):
    """Token ids (B, T) → logits (B, T, vocab)."""

    def __init__(self, a: GPTArgs, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.args, self.vocab_size = a, vocab_size
        self.activation_checkpointing = False
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, a.width),
            wpe=nn.Embedding(a.context, a.width),
            drop=nn.Dropout(dropout),
            h=nn.ModuleList(Block(a, dropout) for _ in range(a.layers)),
            ln_f=LayerNorm(a.width, a.bias),
        ))
        self.lm_head = nn.Linear(a.width, vocab_size, bias=False)
        if a.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init)
        for block in self.transformer.h:
            for proj in block.residual_projections():
                # GPT-2: scale residual projections by depth so the residual stream stays O(1).
                nn.init.normal_(proj.weight, 0.0, 0.02 / math.sqrt(2 * a.layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Append `tokens` sampled tokens to idx (B, T)."""
        for _ in range(tokens):
            logits = self(idx[:, -self.args.context:])[:, -1, :] / max(temperature, 1e-6)
            if top_k:
                v, _ = torch.topk(logits, min(top_k, logits.shape[-1]))
                logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6·N + 12·layers·heads·head_dim·context (PaLM appendix B)."""
        n = sum(p.numel() for p in self.parameters())
        a = self.args
        return 6 * n + 12 * a.layers * a.width * a.context
