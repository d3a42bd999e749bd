"""Shared network blocks (taming-style ResnetBlock/AttnBlock, DCVC-DC depthwise blocks, sub-pixel upsamplers)."""
