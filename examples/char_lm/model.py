"""A small character-level transformer language model written in plain torch.

The model is deliberately self-contained: it does not depend on `trainer` or on
transformers, so it shows that the Trainer drives any `torch.nn.Module` that follows the
reference's model contract: `forward(input_ids, labels=None)` returns a mapping holding
`"logits"` and, when labels are given, a scalar `"loss"`.

Architecture: token and learned position embeddings, `n_layer` pre-norm blocks (causal
self-attention through `torch.nn.functional.scaled_dot_product_attention`, then a GELU
MLP), a final LayerNorm and an output head that reuses the token embedding matrix (tied
weights). The head is computed with `F.linear` on the embedding weight instead of a
second `nn.Linear` sharing the parameter, so the state dict holds the matrix once and
every checkpoint format (safetensors refuses aliased tensors) saves it as is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CharLMConfig", "CharTransformer"]

IGNORE_INDEX = -100
"""Label value that the loss skips, as in the reference's models (padding, prompt tokens)."""


@dataclass
class CharLMConfig:
    """Shape of a `CharTransformer`.

    Attributes:
        vocab_size: Number of distinct characters; token ids are in `[0, vocab_size)`.
        block_size: Longest sequence the model accepts (size of the position table).
        n_layer: Number of transformer blocks.
        n_head: Attention heads per block; must divide `n_embd`.
        n_embd: Width of the residual stream.
        dropout: Dropout probability on embeddings, attention and MLP outputs.
    """

    vocab_size: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"CharLMConfig.{name} must be a positive integer, got {value!r}; "
                    "pass a value >= 1."
                )
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"CharLMConfig.n_embd ({self.n_embd}) must be divisible by n_head "
                f"({self.n_head}); pick n_embd as a multiple of n_head."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"CharLMConfig.dropout must be in [0, 1), got {self.dropout!r}; "
                "use 0.0 to disable dropout."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict (saved next to the weights)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CharLMConfig:
        """Build a config from `to_dict` output; unknown keys are rejected, not dropped.

        Raises:
            ValueError: If `values` holds a key that is not a config field.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown CharLMConfig keys {unknown}; allowed keys are {sorted(known)}."
            )
        return cls(**values)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and the past."""

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend causally over `x` of shape (batch, time, n_embd); same shape out."""
        batch, time, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        # (batch, time, width) -> (batch, heads, time, head_dim) for the fused kernel.
        q, k, v = (t.view(batch, time, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        attn_dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=attn_dropout, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(batch, time, width)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward layer, four times as wide as the residual stream."""

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply fc -> GELU -> proj -> dropout."""
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_mlp = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run one block on `x` of shape (batch, time, n_embd)."""
        x = x + self.attn(self.ln_attn(x))
        return x + self.mlp(self.ln_mlp(x))


class CharTransformer(nn.Module):
    """Decoder-only transformer over characters, with the Trainer's model contract.

    Args:
        config: The model's shape; kept as `self.config` and saved by the example script.
    """

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.apply(self._init_weights)
        # Scale the residual projections down with depth so the stream's variance stays
        # roughly constant at initialisation (GPT-2's recipe).
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Count parameters, the tied head once.

        The signature is the one transformers models have, because Trainers that
        estimate floating-point operations call `num_parameters(exclude_embeddings=True)`
        on any model that defines this method.

        Args:
            only_trainable: Count only parameters with `requires_grad`.
            exclude_embeddings: Leave out the token and position tables.
        """
        tables = (self.tok_emb.weight, self.pos_emb.weight)
        skipped = {id(t) for t in tables} if exclude_embeddings else set()
        return sum(
            p.numel()
            for p in self.parameters()
            if id(p) not in skipped and (p.requires_grad or not only_trainable)
        )

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Score every next character of `input_ids`.

        Args:
            input_ids: Token ids of shape (batch, time), `time <= config.block_size`.
            labels: Optional ids aligned with `input_ids` (usually equal to them); the
                model shifts them itself, so position t is trained to predict label t+1.
                Positions labelled -100 are ignored.

        Returns:
            `{"logits": (batch, time, vocab_size)}`, plus `"loss"` (mean next-character
            cross entropy, a scalar) when `labels` is given.

        Raises:
            ValueError: If `input_ids` is not 2-D or longer than `block_size`.
        """
        logits = self._logits(input_ids)
        if labels is None:
            return {"logits": logits}
        loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)),
            labels[:, 1:].reshape(-1),
            ignore_index=IGNORE_INDEX,
        )
        return {"loss": loss, "logits": logits}

    def _logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(
                f"input_ids must have shape (batch, time), got {tuple(input_ids.shape)}; "
                "add a batch dimension with input_ids.unsqueeze(0)."
            )
        time = input_ids.size(1)
        if time > self.config.block_size:
            raise ValueError(
                f"input_ids has {time} positions but the model was built with "
                f"block_size={self.config.block_size}; crop the sequence or build a model "
                "with a larger block_size."
            )
        positions = torch.arange(time, device=input_ids.device)
        x = self.drop(self.tok_emb(input_ids) + self.pos_emb(positions))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.tok_emb.weight)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample a continuation of `input_ids` one character at a time.

        The context fed to the model is cropped to its last `block_size - 1` ids, so the
        continuation may be longer than the model's window. Why not `block_size`: with
        labels equal to the inputs and shifted inside `forward`, a window of `block_size`
        characters trains the predictions made at positions `0 .. block_size - 2` only;
        the last position (and its position embedding) never receives a gradient, so
        sampling from it would read an untrained state. The model's train/eval mode is
        restored afterwards.

        Args:
            input_ids: Prompt ids of shape (batch, time) with time >= 1.
            max_new_tokens: Number of ids to append (>= 0).
            temperature: Divides the logits; below 1 is more conservative. Must be > 0.
            top_k: If given, sample only among the `top_k` most likely characters.
            generator: Optional torch generator (on the model's device) for repeatable
                samples.

        Returns:
            The prompt followed by the sampled ids, shape (batch, time + max_new_tokens).

        Raises:
            ValueError: On an empty prompt, negative `max_new_tokens`, non-positive
                `temperature` or `top_k` < 1.
        """
        _check_sampling_args(input_ids, max_new_tokens, temperature, top_k)
        max_context = max(1, self.config.block_size - 1)
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                context = input_ids[:, -max_context:]
                next_logits = self._logits(context)[:, -1, :] / temperature
                if top_k is not None:
                    kth = torch.topk(next_logits, min(top_k, next_logits.size(-1))).values
                    next_logits = next_logits.masked_fill(next_logits < kth[:, -1:], -math.inf)
                probs = F.softmax(next_logits, dim=-1)
                next_id = torch.multinomial(probs, num_samples=1, generator=generator)
                input_ids = torch.cat([input_ids, next_id], dim=1)
        finally:
            self.train(was_training)
        return input_ids


def _check_sampling_args(
    input_ids: torch.Tensor, max_new_tokens: int, temperature: float, top_k: int | None
) -> None:
    if input_ids.dim() != 2 or input_ids.size(1) == 0:
        raise ValueError(
            f"generate needs a non-empty prompt of shape (batch, time), got "
            f"{tuple(input_ids.shape)}; encode at least one character."
        )
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}.")
    if temperature <= 0:
        raise ValueError(
            f"temperature must be > 0, got {temperature}; use a small value such as 0.1 "
            "for nearly greedy sampling."
        )
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be None or >= 1, got {top_k}.")
