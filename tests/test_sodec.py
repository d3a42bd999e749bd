"""SODEC (methods/sodec/): the paper's structure at full scale on the meta device, real streams of the tiny
model through the CLI in other processes, and the preview decode (the fidelity decoder alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from codec_testing import LatentCodecContract
from PIL import Image
from tiny import run_cli, tiny_pipeline

from onestep.errors import ModelError
from onestep.methods.pipeline import OneStepPipeline, pad_image, to_uint8
from onestep.methods.registry import build_pipeline
from onestep.methods.sodec.codec import Y_HAT, SODECCodec
from onestep.methods.sodec.guidance import FIDELITY_IMAGE
from onestep.methods.sodec.model import part_parameters, sodec_tiny


class TestSODECCodecContract(LatentCodecContract):
    """The codec reads the image (the latent is ignored): streams, determinism, save/load, refusals."""

    sizes = ((64, 64), (64, 128))

    def make_codec(self) -> SODECCodec:
        return SODECCodec.tiny()

    def expected_features_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, 4, height // 8, width // 8)


def test_full_builds_on_meta_with_the_papers_shapes() -> None:
    with torch.device("meta"):
        pipeline = build_pipeline("sodec", "full")
    counts = part_parameters(pipeline)
    assert counts["UNet"] == 865_910_724  # SD-2.1-base's UNet, exactly
    assert counts["D_m"] == 49_490_199  # SD's VAE decoder + post_quant_conv: no encoder
    assert counts["F"] == 4_652_008  # EfficientNet-Lite0
    assert 150e6 < counts["D_a"] < 160e6  # HiFiC's generator (~156M)
    assert counts["LoRA"] > 0 and counts["E"] > 0
    assert sum(counts.values()) == pipeline.num_parameters()  # every parameter is in one named part
    assert not hasattr(pipeline.autoencoder.vae, "encoder")
    codec = pipeline.codec
    assert codec.encoder.layers[-1].out_channels == 220 and codec.z_model.channels == 320
    assert pipeline.generator.context_dim == 1024 and pipeline.generator.timestep == 999
    assert pipeline.conditioner.projector.queries.shape == (1, 77, 1024)


def test_tiny_shapes_and_frozen_parts() -> None:
    pipeline = sodec_tiny()
    image = torch.rand(2, 3, 128, 192) * 2 - 1
    out = pipeline.codec(image, pipeline.autoencoder.encode(image))
    assert out.features.shape == (2, 4, 16, 24)  # the SD latent grid, /8
    assert out.extras[Y_HAT].shape == (2, 16, 8, 12)  # y at /16
    context = pipeline.conditioning(out)
    assert context.shape == (2, 77, pipeline.generator.context_dim)
    assert out.extras[FIDELITY_IMAGE].shape == image.shape  # D_a's full image
    trainable = {n for n, p in pipeline.named_parameters() if p.requires_grad}
    assert not any(n.startswith("conditioner.backbone.") for n in trainable)  # F frozen
    unet = {n for n in trainable if n.startswith("generator.")}
    assert unet and all(".lora_" in n for n in unet)  # the UNet trains through LoRA only
    result = pipeline(image)
    assert result.reconstruction.shape == image.shape and torch.isfinite(result.bpp).all()


def _image(path: Path, height: int, width: int) -> Path:
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_cli_round_trip_both_modes_in_other_processes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pipeline = sodec_tiny().eval()
    model = pipeline.save_pretrained(tmp_path / "model")
    source = _image(tmp_path / "a.png", 75, 101)  # not a multiple of anything
    stream = tmp_path / "a.osc"
    outputs = {}
    for threads in (1, 2):
        commands = [
            ["decompress", stream, "-o", tmp_path / f"n{threads}.png", "--model", model, "--threads", threads],
            ["decompress", stream, "-o", tmp_path / f"p{threads}.png", "--model", model, "--threads", threads,
             "--preview"],
        ]  # fmt: skip
        if threads == 1:
            commands.insert(0, ["compress", source, "-o", stream, "--model", model, "--threads", 1])
        results = run_cli(commands, threads=threads)
        assert all(r.status == 0 for r in results), [r.stderr for r in results]
        for kind in "np":
            outputs[kind, threads] = np.asarray(Image.open(tmp_path / f"{kind}{threads}.png"))
    for kind in "np":
        assert outputs[kind, 1].shape == (75, 101, 3)
        # the same stream; pixels within a grey level across thread counts (only the entropy path is on one)
        assert np.abs(outputs[kind, 1].astype(int) - outputs[kind, 2].astype(int)).max() <= 1
    assert not np.array_equal(outputs["n", 1], outputs["p", 1])  # two different decoders
    # the file's bpp counts every byte of it
    assert stream.stat().st_size > 0
    # in this process, the preview is D_a(y_hat) of the decoded stream
    from onestep import api

    data = stream.read_bytes()
    loaded = api.load_model(model)
    assert np.array_equal(api.decompress(loaded, data, preview=True).permute(1, 2, 0).numpy(), outputs["p", 1])


def test_preview_is_the_fidelity_image_without_the_unet() -> None:
    torch.manual_seed(1)
    pipeline = sodec_tiny().eval()
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    encoded = pipeline.compress(image)
    calls = {"unet": 0, "decoder": 0}
    pipeline.generator.unet.register_forward_hook(lambda *_: calls.__setitem__("unet", calls["unet"] + 1))
    pipeline.autoencoder.vae.decoder.register_forward_hook(
        lambda *_: calls.__setitem__("decoder", calls["decoder"] + 1)
    )
    preview = pipeline.decompress(encoded, preview=True)
    assert calls == {"unet": 0, "decoder": 0}
    normal = pipeline.decompress(encoded)
    assert calls == {"unet": 1, "decoder": 1}
    # the preview is exactly D_a's image of the stream's y_hat
    with torch.no_grad():
        out = pipeline.codec.decompress(encoded.sections, (64, 128), mode="normal")
        expected = to_uint8(pipeline.conditioner.fidelity_decoder(out.extras[Y_HAT])[0, :, :64, :96])
    assert torch.equal(preview, expected)
    assert preview.shape == normal.shape == (3, 64, 96)
    # and it is a faithful image once D_a is: the same stream's padded input through E gives that y_hat
    x = pad_image(image[None].float() / 127.5 - 1, pipeline.pad_multiple)
    assert pipeline.codec.encoder(x).shape == out.extras[Y_HAT].shape


def test_preview_refused_by_models_without_one() -> None:
    pipeline: OneStepPipeline = tiny_pipeline()
    encoded = pipeline.compress(torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8))
    with pytest.raises(ModelError, match="no preview"):
        pipeline.decompress(encoded, preview=True)


def test_small_is_the_same_structure_on_pixel_blocks() -> None:
    pipeline = build_pipeline("sodec", "small")
    counts = part_parameters(pipeline)
    assert counts["D_m"] == 0 and counts["LoRA"] == 0  # SpaceToDepth; the small UNet trains in full
    assert sum(counts.values()) == pipeline.num_parameters() < 20e6
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    out = pipeline(image)
    assert out.latent_hat.shape == (1, 192, 8, 8) and out.reconstruction.shape == image.shape


def test_openclip_backbone_reads_a_folder_of_visual_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from onestep.methods.sodec.guidance import FidelityGuidance, OpenCLIPVisionTower

    options = {"width": 32, "layers": 2, "heads": 2, "patch": 8, "image_size": 32}
    source = OpenCLIPVisionTower(**options)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    state = {f"visual.{k}": v for k, v in source.state_dict().items()}
    state["visual.proj"] = torch.zeros(32, 16)  # the pooled projection and the text tower are not read
    state["token_embedding.weight"] = torch.zeros(10, 32)
    save_file(state, str(tmp_path / "open_clip_model.safetensors"))
    guidance = FidelityGuidance(
        y_channels=16, widths=(8, 8, 16, 16, 32), residual_blocks=1, backbone="openclip-vit",
        backbone_options=options, input_size=32, context_dim=24, heads=4,
    )  # fmt: skip
    guidance.backbone.load_pretrained(str(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(guidance.backbone.state_dict().values(), source.state_dict().values()))
    tokens = guidance.backbone(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert tokens.shape == (2, 17, 32)  # the class token + a 4 x 4 patch grid
    with pytest.raises(ModelError, match="does not exist"):
        guidance.backbone.load_pretrained(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="holds none"):
        guidance.backbone.load_pretrained(str(tmp_path / "empty"))
