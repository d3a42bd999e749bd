"""A model folder loads one tensor at a time into a model built without memory for its parameters; loaded for
decoding only, it leaves out the sender's weights (they stay on the meta device) and decodes the same pixels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from onestep.errors import ModelError
from onestep.methods.onedc.model import onedc_tiny
from onestep.methods.pipeline import OneStepPipeline


def test_decode_only_load_skips_the_senders_weights_and_decodes_the_same(tmp_path: Path) -> None:
    torch.manual_seed(0)
    made = onedc_tiny().eval()
    folder = made.save_pretrained(tmp_path / "model")
    whole = OneStepPipeline.from_pretrained(folder)
    receiver = OneStepPipeline.from_pretrained(folder, decode_only=True)
    image = torch.randint(0, 256, (3, 70, 90), dtype=torch.uint8)
    encoded = made.compress(image)
    assert whole.compress(image).sections == encoded.sections
    assert whole.skipped_weights == () and set(receiver.skipped_weights) == {
        "autoencoder.vae.encoder.",
        "autoencoder.vae.quant_conv.",
        "codec.encoder.",
        "codec.hyper_encoder.",
    }
    skipped = [n for n, p in receiver.named_parameters() if p.is_meta]
    assert skipped and all(n.startswith(receiver.skipped_weights) for n in skipped)
    assert not any(p.is_meta for p in whole.parameters())
    assert torch.equal(receiver.decompress(encoded), made.decompress(encoded))
    assert torch.equal(whole.decompress(encoded), made.decompress(encoded))
    assert receiver.fingerprint() == whole.fingerprint() == made.fingerprint()
    trainable = [n for n, p in made.named_parameters() if p.requires_grad]
    assert [n for n, p in whole.named_parameters() if p.requires_grad] == trainable  # flags kept
    with pytest.raises(ModelError, match="loaded for decoding only"):
        receiver.compress(image)


def test_wrong_shapes_are_one_model_error(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = onedc_tiny().eval().save_pretrained(tmp_path / "model")
    other = onedc_tiny(lora_rank=2).eval()
    other.save_pretrained(tmp_path / "other")
    (folder / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="do not fit"):
        OneStepPipeline.from_pretrained(folder)
