"""A contract every autoencoder's tests reuse: subclass `AutoencoderContract` in a `Test...` class and fill
in `make_autoencoder` (and `exact` for lossless ones).

Checked: latent and image shapes at the declared downsampling, finite values, deterministic encoding,
save/load giving the same latents and images, and an `encoder_fingerprint` that changes with every
encoder weight and setting but not with the decoder's weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from onestep.autoencoders.base import Autoencoder
from onestep.modeling import ModelMixin


class AutoencoderContract:
    size: tuple[int, int] = (32, 48)  # image H, W (multiples of the downsampling)
    exact: bool = False  # decode(encode(x)) == x bit for bit

    def make_autoencoder(self) -> Autoencoder:
        """A small, randomly initialised autoencoder."""
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def autoencoder(cls) -> Autoencoder:
        torch.manual_seed(0)
        return cls().make_autoencoder().eval()

    def image(self, batch: int = 2, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(batch, 3, *self.size, generator=generator) * 2 - 1

    def test_shapes(self, autoencoder: Autoencoder) -> None:
        h, w = self.size
        ds = autoencoder.downsampling
        with torch.no_grad():
            latent = autoencoder.encode(self.image())
            assert latent.shape == (2, autoencoder.latent_channels, h // ds, w // ds)
            decoded = autoencoder.decode(latent)
        assert decoded.shape == (2, 3, h, w)
        assert torch.isfinite(latent).all() and torch.isfinite(decoded).all()

    def test_encoding_is_deterministic(self, autoencoder: Autoencoder) -> None:
        with torch.no_grad():
            assert torch.equal(autoencoder.encode(self.image()), autoencoder.encode(self.image()))

    def test_exact_round_trip(self, autoencoder: Autoencoder) -> None:
        if not self.exact:
            pytest.skip("a lossy autoencoder")
        image = self.image()
        assert torch.equal(autoencoder.decode(autoencoder.encode(image)), image)

    def test_save_and_load_give_the_same_latents_and_images(self, autoencoder: Autoencoder, tmp_path: Path) -> None:
        loaded = ModelMixin.from_pretrained(autoencoder.save_pretrained(tmp_path / "ae"))
        assert type(loaded) is type(autoencoder)
        with torch.no_grad():
            latent = autoencoder.encode(self.image())
            assert torch.equal(loaded.encode(self.image()), latent)
            assert torch.equal(loaded.decode(latent), autoencoder.decode(latent))
        assert loaded.encoder_fingerprint() == autoencoder.encoder_fingerprint()

    def test_encoder_fingerprint_follows_the_encoder_only(self, autoencoder: Autoencoder) -> None:
        fingerprint = autoencoder.encoder_fingerprint()
        encoder_keys = set(autoencoder.encoder_state_dict())
        float_keys = [k for k, v in autoencoder.state_dict().items() if v.is_floating_point()]
        if not float_keys:
            return  # nothing to perturb: the fingerprint is the (empty) weights and the settings
        changed_decoder = copy.deepcopy(autoencoder)
        with torch.no_grad():
            for name, tensor in changed_decoder.state_dict().items():
                if name not in encoder_keys and tensor.is_floating_point():
                    tensor.add_(1.0)
        assert changed_decoder.encoder_fingerprint() == fingerprint, "decoder weights must not count"
        with torch.no_grad():
            latent = autoencoder.encode(self.image())
            assert torch.equal(changed_decoder.encode(self.image()), latent), "the encoder state is complete"
        for name in sorted(encoder_keys):
            changed_encoder = copy.deepcopy(autoencoder)
            if changed_encoder.state_dict()[name].is_floating_point():
                with torch.no_grad():
                    changed_encoder.state_dict()[name].add_(1.0)
                assert changed_encoder.encoder_fingerprint() != fingerprint, name
                break
