"""A contract every one-step generator's tests reuse: subclass `GeneratorContract` in a `Test...` class and
fill in `make_generator`, the feature and latent widths and the context shape.

Checked: the latent's shape and finiteness, deterministic eval outputs, gradients reaching every trainable
parameter, frozen parameters staying without gradient, and save/load giving the same outputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from onestep.generators.base import Generator
from onestep.modeling import ModelMixin


class GeneratorContract:
    feature_channels: int = 32
    latent_channels: int = 4
    size: tuple[int, int] = (8, 16)  # latent H, W
    context_shape: tuple[int, int] | None = None  # tokens, width; None: no context

    def make_generator(self) -> Generator:
        """A small, randomly initialised generator."""
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def generator(cls) -> Generator:
        torch.manual_seed(0)
        return cls().make_generator().eval()

    def inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        rng = torch.Generator().manual_seed(seed)
        features = torch.randn(batch, self.feature_channels, *self.size, generator=rng)
        context = None if self.context_shape is None else torch.randn(batch, *self.context_shape, generator=rng)
        return features, context

    def test_latent_shape(self, generator: Generator) -> None:
        with torch.no_grad():
            latent = generator(*self.inputs())
        assert latent.shape == (2, self.latent_channels, *self.size)
        assert latent.dtype == torch.float32 and torch.isfinite(latent).all()

    def test_eval_outputs_are_deterministic(self, generator: Generator) -> None:
        with torch.no_grad():
            assert torch.equal(generator(*self.inputs()), generator(*self.inputs()))

    def test_gradients_reach_exactly_the_trainable_parameters(self, generator: Generator) -> None:
        generator.zero_grad(set_to_none=True)
        generator(*self.inputs()).square().mean().backward()
        trainable = {n for n, p in generator.named_parameters() if p.requires_grad}
        assert trainable, "a generator has something to train"
        for name, p in generator.named_parameters():
            assert (p.grad is not None) == (name in trainable), name
        generator.zero_grad(set_to_none=True)

    def test_save_and_load_give_the_same_latent(self, generator: Generator, tmp_path: Path) -> None:
        loaded = ModelMixin.from_pretrained(generator.save_pretrained(tmp_path / "generator"))
        assert type(loaded) is type(generator)
        with torch.no_grad():
            assert torch.equal(loaded(*self.inputs()), generator(*self.inputs()))
