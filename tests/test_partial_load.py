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


def test_a_damaged_weights_file_is_one_model_error(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = onedc_tiny().eval().save_pretrained(tmp_path / "model")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    for damaged in (data[: len(data) - 100], data[:6], b"\xff" * 8 + data[8:]):
        weights.write_bytes(damaged)
        with pytest.raises(ModelError, match="cannot read"):
            OneStepPipeline.from_pretrained(folder)


def test_bfloat16_given_at_load_is_the_same_model_as_cast_after(tmp_path: Path) -> None:
    torch.manual_seed(0)
    made = onedc_tiny(lora_rank=0).eval()
    folder = made.save_pretrained(tmp_path / "model")
    encoded = made.compress(torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8))
    loaded = OneStepPipeline.from_pretrained(folder, decode_only=True, render_dtype=torch.bfloat16)
    made.set_render_dtype(torch.bfloat16)
    assert torch.equal(loaded.decompress(encoded), made.decompress(encoded))
    assert loaded.fingerprint() == made.fingerprint()
    mine, theirs = loaded.state_dict(), made.state_dict()
    for key, tensor in mine.items():
        if not tensor.is_meta:  # the same dtype, layout and values as cast in memory
            assert tensor.dtype == theirs[key].dtype and tensor.stride() == theirs[key].stride(), key
            assert torch.equal(tensor, theirs[key]), key
