"""`onestep import-onedc` on a synthetic release: the tiny architecture written under the official key names
(peft LoRA included, random values), plus a diffusers-format VAE folder."""

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file

from onestep import api, cli
from onestep.errors import ModelError
from onestep.generators.lora import LoRALayer
from onestep.methods.importing import write_safetensors_streaming
from onestep.methods.onedc.codec_keys import to_reference_state_dict
from onestep.methods.onedc.importer import CODEC_FILE, UNET_FILE, import_onedc
from onestep.methods.onedc.model import onedc_tiny
from onestep.methods.onedc.unet_keys import official_unet_key


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(checkpoint folder, VAE folder, the pipeline they were written from)."""
    torch.manual_seed(0)
    model = onedc_tiny().eval()
    gen = torch.Generator().manual_seed(1)
    for m in model.generator.modules():
        if isinstance(m, LoRALayer):  # released adapters are trained, not zero
            m.lora_B.weight.data = torch.randn(m.lora_B.weight.shape, generator=gen) * 0.05
    folder = tmp_path_factory.mktemp("release")
    unet = {official_unet_key(k): v.contiguous() for k, v in model.generator.state_dict().items()}
    save_file(unet, str(folder / UNET_FILE))
    save_file(to_reference_state_dict(model.codec.state_dict()), str(folder / CODEC_FILE))
    vae = folder / "vae"
    model.autoencoder.vae.save_pretrained(vae)  # diffusers layout: config.json + diffusion_pytorch_model.safetensors
    return folder, vae, model


def test_synthetic_release_uses_the_official_names(release):
    keys = set(load_file(str(release[0] / UNET_FILE)))
    assert any(k.endswith(".lora_A.default.weight") for k in keys)
    assert "down_blocks.0.attentions.0.proj_in.base_layer.weight" in keys
    assert "vae_reduction.short_cut.weight" in keys and "conv_in.weight" in keys
    assert any(k.startswith("y_spatial_prior_adaptor_1.") for k in load_file(str(release[0] / CODEC_FILE)))


def test_import_merges_lora_exactly(release, tmp_path):
    folder, vae, original = release
    out = tmp_path / "model"
    assert cli.main(["import", "onedc", str(folder), "--vae", str(vae), "-o", str(out), "--arch", "tiny"]) == 0
    model = api.load_model(out)
    assert not model.generator.has_lora and model.generator.config["lora_rank"] == 0
    # Codec and VAE come over unchanged.
    for part in ("codec", "autoencoder"):
        ours, theirs = getattr(model, part).state_dict(), getattr(original, part).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # The merged generator computes what the adapters computed (float64: compare the merge, not rounding).
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(1, 32, 8, 16, generator=gen, dtype=torch.float64)
    context = torch.randn(1, 2, 64, generator=gen, dtype=torch.float64)
    generator = copy.deepcopy(original.generator).double()
    with torch.no_grad():
        merged = model.generator.double()(features, context)
        unmerged = generator(features, context)
        for m in generator.modules():
            if isinstance(m, LoRALayer):
                m.lora_B.weight.zero_()
        without_lora = generator(features, context)
    assert (merged - unmerged).abs().max() < 1e-5
    assert (merged - without_lora).abs().max() > 1e-3  # the adapters matter, so the merge did something


def test_import_keep_lora_reproduces_the_weights(release, tmp_path):
    folder, vae, original = release
    out = import_onedc(folder, vae, tmp_path / "lora", arch="tiny", keep_lora=True, name=original.name)
    model = api.load_model(out)
    assert model.generator.has_lora
    assert model.fingerprint() == original.fingerprint()  # every tensor, bit for bit
    image = (torch.rand(3, 40, 70) * 255).to(torch.uint8)
    data = api.compress(model, image)
    assert api.decompress(model, data).shape == (3, 40, 70)


def test_missing_file(release, tmp_path):
    folder, vae, _ = release
    (tmp_path / UNET_FILE).write_bytes((folder / UNET_FILE).read_bytes())
    with pytest.raises(ModelError, match=f"{CODEC_FILE} is missing"):
        import_onedc(tmp_path, vae, tmp_path / "out", arch="tiny")


def test_wrong_keys_and_shapes_are_named(release, tmp_path):
    folder, vae, _ = release
    state = load_file(str(folder / UNET_FILE))
    state["bogus.weight"] = state.pop("conv_out.bias")
    state["conv_in.weight"] = torch.zeros(3, 3, 3, 3)
    broken = tmp_path / "broken"
    broken.mkdir()
    save_file(state, str(broken / UNET_FILE))
    (broken / CODEC_FILE).write_bytes((folder / CODEC_FILE).read_bytes())
    with pytest.raises(ModelError) as info:
        import_onedc(broken, vae, tmp_path / "out", arch="tiny")
    message = str(info.value)
    assert "1 missing (conv_out.bias)" in message and "1 unexpected (bogus.weight)" in message
    assert "conv_in.weight is (3, 3, 3, 3), expected (32, 32, 3, 3)" in message
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_cli_reports_errors_on_one_line(tmp_path, capsys):
    assert cli.main(["import-onedc", str(tmp_path), "--vae", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and UNET_FILE in err


def test_streaming_writer_round_trips_and_is_atomic(tmp_path):
    tensors = {
        "b.int": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "a.half": torch.randn(3, 5).to(torch.bfloat16),
        "c.scalar": torch.tensor(1.5),
        "d.odd": torch.randn(7, dtype=torch.float16),
    }
    specs = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
    write_safetensors_streaming(tmp_path / "x.safetensors", specs, tensors.__getitem__)
    loaded = load_file(str(tmp_path / "x.safetensors"))
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[k], tensors[k]) for k in tensors)

    def failing(name: str) -> torch.Tensor:
        if name == "c.scalar":
            raise RuntimeError("disk full")
        return tensors[name]

    with pytest.raises(RuntimeError):
        write_safetensors_streaming(tmp_path / "y.safetensors", specs, failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.safetensors"]
    with pytest.raises(ModelError, match="shape"):
        write_safetensors_streaming(
            tmp_path / "z.safetensors", {**specs, "c.scalar": ((2,), torch.float32)}, tensors.__getitem__
        )
