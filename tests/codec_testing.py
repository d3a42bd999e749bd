"""A contract every latent codec's tests reuse: subclass `LatentCodecContract` in a `Test...` class and
fill in `make_codec` and the expected shapes.

Checked for every mode and size: forward shapes and finite estimated bits (and gradients in training),
compress -> decompress reproducing bit for bit what the encoder side computes
(`codec.compress_and_reconstruct`), deterministic streams, save/load giving a model that decodes the
original's streams identically, and StreamErrors for missing sections and unknown modes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from onestep.codecs.base import CodecOutput, LatentCodec
from onestep.errors import StreamError


class LatentCodecContract:
    sizes: tuple[tuple[int, int], ...] = ((64, 64),)  # padded image sizes (H, W) to exercise
    latent_channels: int = 4
    latent_downsampling: int = 8

    def make_codec(self) -> LatentCodec:
        """A small, randomly initialised codec in eval mode."""
        raise NotImplementedError

    def expected_features_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        raise NotImplementedError

    def expected_context_shape(self, batch: int, height: int, width: int) -> tuple[int, ...] | None:
        return None

    # --- helpers -------------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def codec(cls) -> LatentCodec:
        torch.manual_seed(0)
        return cls().make_codec().eval()

    def inputs(self, height: int, width: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """A random image in [-1, 1] and a random latent of the matching size."""
        generator = torch.Generator().manual_seed(seed)
        image = torch.rand(batch, 3, height, width, generator=generator) * 2 - 1
        ds = self.latent_downsampling
        latent = torch.randn(batch, self.latent_channels, height // ds, width // ds, generator=generator)
        return image, latent

    def check_output(self, out: CodecOutput, batch: int, height: int, width: int) -> None:
        assert out.features.shape == self.expected_features_shape(batch, height, width)
        assert torch.isfinite(out.features).all()
        expected_context = self.expected_context_shape(batch, height, width)
        if expected_context is None:
            assert out.context is None
        else:
            assert out.context is not None and out.context.shape == expected_context
            assert torch.isfinite(out.context).all()

    # --- the contract --------------------------------------------------------------------------------

    def test_forward_shapes_and_finite_bits(self, codec: LatentCodec) -> None:
        height, width = self.sizes[-1]
        image, latent = self.inputs(height, width, batch=2)
        with torch.no_grad():
            out = codec(image, latent)
        self.check_output(out, 2, height, width)
        assert out.bits, "forward must estimate bits"
        for name, bits in out.bits.items():
            assert bits.shape == (2,), name
            assert torch.isfinite(bits).all() and (bits >= 0).all(), name

    def test_training_forward_has_gradients(self) -> None:
        torch.manual_seed(1)
        codec = self.make_codec().train()
        height, width = self.sizes[-1]
        image, latent = self.inputs(height, width, batch=1, seed=1)
        out = codec(image, latent)
        loss = out.features.square().mean() + out.total_bits().sum() * 1e-3
        if out.context is not None:
            loss = loss + out.context.square().mean()
        loss.backward()
        grads = [p.grad for p in codec.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
        assert all(torch.isfinite(g).all() for g in grads if g is not None)

    @pytest.mark.parametrize("size_index", [0, -1])
    def test_round_trip_is_bit_exact(self, codec: LatentCodec, size_index: int) -> None:
        height, width = self.sizes[size_index]
        image, latent = self.inputs(height, width, seed=2)
        for mode in codec.modes:
            sections, encoded = codec.compress_and_reconstruct(image, latent, mode=mode)
            assert sections and all(isinstance(v, bytes) for v in sections.values())
            decoded = codec.decompress(sections, (height, width), mode=mode)
            self.check_output(decoded, 1, height, width)
            assert torch.equal(decoded.features, encoded.features), mode
            if encoded.context is not None:
                assert torch.equal(decoded.context, encoded.context), mode
            assert codec.compress(image, latent, mode=mode) == sections, f"{mode}: streams are not deterministic"

    def test_save_load_decodes_the_same(self, codec: LatentCodec, tmp_path: Path) -> None:
        height, width = self.sizes[0]
        image, latent = self.inputs(height, width, seed=3)
        codec.save_pretrained(tmp_path / "codec")
        loaded = type(codec).from_pretrained(tmp_path / "codec")
        assert loaded.to_config() == codec.to_config()
        assert loaded.fingerprint() == codec.fingerprint()
        for mode in codec.modes:
            sections = codec.compress(image, latent, mode=mode)
            assert loaded.compress(image, latent, mode=mode) == sections
            original = codec.decompress(sections, (height, width), mode=mode)
            assert torch.equal(loaded.decompress(sections, (height, width), mode=mode).features, original.features)

    def test_missing_section_or_unknown_mode_raise(self, codec: LatentCodec) -> None:
        height, width = self.sizes[0]
        image, latent = self.inputs(height, width, seed=4)
        for mode in codec.modes:
            sections = codec.compress(image, latent, mode=mode)
            for name in sections:
                partial = {k: v for k, v in sections.items() if k != name}
                with pytest.raises(StreamError):
                    codec.decompress(partial, (height, width), mode=mode)
        with pytest.raises(StreamError):
            codec.decompress(sections, (height, width), mode="no-such-mode")
