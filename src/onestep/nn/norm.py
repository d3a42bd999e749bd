"""The GroupNorm used by the taming-style blocks: 32 groups, eps 1e-6, affine."""

from torch import nn


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    if channels % groups:
        raise ValueError(f"GroupNorm({groups}) needs a channel count divisible by {groups}, got {channels}")
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
