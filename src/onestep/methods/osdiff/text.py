"""The empty-prompt embedding OSDiff cross-attends to, computed once at import from the SD-2.1 checkpoint.

The reference runs `FrozenOpenCLIPEmbedder(layer="penultimate")` (OpenCLIP ViT-H/14 text tower) on "" for
every image: token embedding + positions, all residual blocks but the last under the causal mask, then the
final LayerNorm, giving 77 x 1024. The prompt never changes, so we compute it once, with this plain-torch
copy of the text tower (parameter names as in the checkpoint's `cond_stage_model.model.*`, so no open_clip
dependency), and store it in the pipeline's `FixedContext` conditioner.

open_clip's tokenizer turns "" into start-of-text, end-of-text, then zeros up to 77 tokens (it pads with 0,
not with end-of-text as Hugging Face's CLIP tokenizer does).
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ModelError

START_OF_TEXT, END_OF_TEXT = 49406, 49407
CONTEXT_LENGTH = 77
HEAD_CHANNELS = 64  # ViT-H/14's text tower: width 1024, 16 heads


def empty_prompt_tokens(length: int = CONTEXT_LENGTH) -> torch.Tensor:
    tokens = torch.zeros(1, length, dtype=torch.long)
    tokens[0, :2] = torch.tensor([START_OF_TEXT, END_OF_TEXT])
    return tokens


class ResidualAttentionBlock(nn.Module):
    """open_clip's pre-LN transformer block (exact GELU, no layer scale)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class TextTower(nn.Module):
    """The OpenCLIP text transformer up to `ln_final` (`text_projection` is not used by SD)."""

    def __init__(self, width: int, layers: int, heads: int, vocab: int = 49408, length: int = CONTEXT_LENGTH) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.zeros(length, width))
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)

    @classmethod
    def for_state_dict(cls, state: dict[str, torch.Tensor]) -> TextTower:
        """The tower whose shapes `state` (keys without `cond_stage_model.model.`) has."""
        vocab, width = state["token_embedding.weight"].shape
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
        return cls(width, layers, max(1, width // HEAD_CHANNELS), vocab, state["positional_embedding"].shape[0])

    @torch.no_grad()
    def penultimate(self, tokens: torch.Tensor) -> torch.Tensor:
        """`FrozenOpenCLIPEmbedder(layer="penultimate")`: every block but the last, then ln_final."""
        length = tokens.shape[1]
        mask = torch.full((length, length), float("-inf")).triu_(1)
        x = self.token_embedding(tokens) + self.positional_embedding
        for block in self.transformer.resblocks[:-1]:
            x = block(x, mask)
        return self.ln_final(x)


def empty_prompt_embedding(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """1 x 77 x width: the embedding of "" by the text tower whose weights are `state`."""
    tower = TextTower.for_state_dict(state)
    missing, unexpected = tower.load_state_dict(state, strict=False)
    if missing:
        raise ModelError(f"the text tower weights are incomplete: missing {', '.join(missing[:4])}")
    return tower.penultimate(empty_prompt_tokens(tower.positional_embedding.shape[0]))
