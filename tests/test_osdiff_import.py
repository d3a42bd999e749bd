"""`onestep import osdiff` on a synthetic release in the published layout (ldm SD-2.1 checkpoint + Lightning
checkpoint, torch.save zip pickles), built from a tiny pipeline; and the refusals."""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from onestep.errors import ModelError
from onestep.methods.osdiff.importer import import_osdiff
from onestep.methods.osdiff.keys import discriminator_key
from onestep.methods.osdiff.model import discriminator_for, osdiff_tiny
from onestep.methods.osdiff.text import TextTower
from onestep.methods.pipeline import OneStepPipeline

SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "sqrt_recip_alphas_cumprod", "posterior_mean_coef1")
LAYERS = 3


def _ldm_key(pipeline_key: str, pipeline: OneStepPipeline) -> str:
    from onestep.methods.osdiff.importer import _locate

    found = _locate(pipeline)(pipeline_key)
    assert found is not None
    return found


def _write_release(folder: Path, pipeline: OneStepPipeline, text: TextTower) -> tuple[Path, Path]:
    """The two files as the authors publish them, from `pipeline`'s weights (random, zero convs non-zero)."""
    sd: dict[str, torch.Tensor] = {}
    lightning: dict[str, torch.Tensor] = {}
    for key, tensor in pipeline.state_dict().items():
        if key == "conditioner.context":
            continue
        name = _ldm_key(key, pipeline)
        if re.search(r"mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$", key) and "vae" in key:
            tensor = tensor[..., None, None]  # ldm's VAE attention uses 1x1 convs
        (lightning if name.startswith(("control_model.", "preprocess_model.")) else sd)[name] = tensor.clone()
    sd.update({f"cond_stage_model.model.{k}": v for k, v in text.state_dict().items()})
    sd["cond_stage_model.model.text_projection"] = torch.randn(32, 32)  # unused by SD
    sd.update({name: torch.rand(1000) for name in SCHEDULE_BUFFERS})
    sd["model_ema.decay"] = torch.tensor(0.9999)
    lightning["control_model.scale_list"] = torch.ones(2 * len(pipeline.generator.control.enc_zero_convs) + 1)
    # the reference's dead LFGCM layers and CompressAI coder state are in its checkpoints
    lightning["preprocess_model.hyper_enc.h_a1.mlp_shared.0.weight"] = torch.randn(128, 64, 3, 3)
    lightning["preprocess_model.f_c.0.weight"] = torch.randn(16, 8, 5, 5)
    lightning["preprocess_model.entropy_bottleneck._quantized_cdf"] = torch.zeros(16, 40, dtype=torch.int32)
    lightning["preprocess_model.gaussian_conditional.scale_table"] = torch.rand(64)
    lightning["preprocess_model.entropy_bottleneck.likelihood_lower_bound.bound"] = torch.tensor([1e-9])
    discriminator = discriminator_for(pipeline.generator)
    lightning.update({f"guidance_model.{discriminator_key(k)}": v for k, v in discriminator.state_dict().items()})
    sd_path, lightning_path = folder / "v2-1_512-ema-pruned.ckpt", folder / "lambda_1.ckpt"
    torch.save({"state_dict": sd, "global_step": 0}, sd_path)
    release = {"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.5.0", "state_dict": lightning}
    torch.save({**release, "optimizer_states": [], "lr_schedulers": []}, lightning_path)
    return sd_path, lightning_path


def _penultimate_by_hand(tower: TextTower, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's text transformer written out with plain matrix products (one head: width 32)."""
    x = tower.token_embedding.weight[tokens[0]] + tower.positional_embedding
    n, width = x.shape
    causal = torch.full((n, n), -math.inf).triu(1)
    for block in list(tower.transformer.resblocks)[:-1]:
        h = torch.nn.functional.layer_norm(x, (width,), block.ln_1.weight, block.ln_1.bias)
        q, k, v = (h @ block.attn.in_proj_weight.T + block.attn.in_proj_bias).split(width, dim=-1)
        attention = torch.softmax(q @ k.T / math.sqrt(width) + causal, dim=-1)
        x = x + attention @ v @ block.attn.out_proj.weight.T + block.attn.out_proj.bias
        h = torch.nn.functional.layer_norm(x, (width,), block.ln_2.weight, block.ln_2.bias)
        h = torch.nn.functional.gelu(h @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias)
        x = x + h @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias
    return torch.nn.functional.layer_norm(x, (width,), tower.ln_final.weight, tower.ln_final.bias)[None]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    torch.manual_seed(0)
    pipeline = osdiff_tiny().eval()
    for conv in pipeline.generator.control.dec_zero_convs:
        torch.nn.init.normal_(conv.weight, std=0.05)
    text = TextTower(width=32, layers=LAYERS, heads=1)
    for p in text.parameters():
        torch.nn.init.normal_(p, std=0.2)
    folder = tmp_path_factory.mktemp("release")
    return pipeline, text, *_write_release(folder, pipeline, text)


def test_synthetic_release_imports_to_the_same_model(release, tmp_path):
    pipeline, text, sd_path, lightning_path = release
    folder = import_osdiff(sd_path, lightning_path, tmp_path / "model", arch="tiny", name="osdiff-tiny")
    imported = OneStepPipeline.from_pretrained(folder)
    ours, theirs = pipeline.state_dict(), imported.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours if k != "conditioner.context")
    from onestep.methods.osdiff.text import empty_prompt_tokens

    expected = _penultimate_by_hand(text, empty_prompt_tokens())
    assert torch.allclose(imported.conditioner.context, expected, atol=1e-5)
    # the imported model decodes like the original once it has the same context
    pipeline.conditioner.context.copy_(imported.conditioner.context)
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    encoded, reconstruction = pipeline.compress_and_reconstruct(image)
    assert torch.equal(imported.decompress(encoded), reconstruction)


def test_import_from_the_cli_in_another_process(release, tmp_path):
    _, _, sd_path, lightning_path = release
    command = [sys.executable, "-m", "onestep.cli", "import", "osdiff", str(sd_path), str(lightning_path)]
    done = subprocess.run([*command, "-o", str(tmp_path / "m"), "--arch", "tiny"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m" / "model.safetensors").is_file()


def _resave(path: Path, target: Path, change) -> Path:
    content = torch.load(path, weights_only=True)
    change(content["state_dict"])
    torch.save(content, target)
    return target


ZERO_CONV = "control_model.enc_zero_convs_out.3.0.weight"
LOCAL = "preprocess_model.local_context.0.weight"
EXTRA = "preprocess_model.extra_layer.weight"
BROKEN = [
    (lambda s: s.pop(ZERO_CONV), rf"1 missing \({re.escape(ZERO_CONV)}\)"),
    (lambda s: s.update({LOCAL: torch.zeros(1, 1, 5, 5)}), rf"wrong shapes \({re.escape(LOCAL)} is \(1, 1, 5, 5\)"),
    (lambda s: s.update({EXTRA: torch.zeros(1)}), rf"1 unexpected \({re.escape(EXTRA)}\)"),
    (lambda s: s.update({"control_model.scale_list": torch.arange(25.0)}), "equal scales"),
]


@pytest.mark.parametrize("change, message", BROKEN)
def test_wrong_or_partial_release_is_refused_in_one_line(release, tmp_path, change, message):
    _, _, sd_path, lightning_path = release
    broken = _resave(lightning_path, tmp_path / "lambda_1.ckpt", change)
    with pytest.raises(ModelError, match=message) as error:
        import_osdiff(sd_path, broken, tmp_path / "model", arch="tiny")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "model").exists()


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_with_code_are_refused(release, tmp_path):
    _, _, sd_path, lightning_path = release
    content = torch.load(lightning_path, weights_only=True)
    content["callbacks"] = {"checkpoint": Payload()}
    torch.save(content, tmp_path / "evil.ckpt")
    with pytest.raises(ModelError, match="holds more than tensors"):
        import_osdiff(sd_path, tmp_path / "evil.ckpt", tmp_path / "model", arch="tiny")
    (tmp_path / "text.ckpt").write_bytes(pickle.dumps({"state_dict": {}}))
    with pytest.raises(ModelError, match="not a torch.save zip archive"):
        import_osdiff(tmp_path / "text.ckpt", lightning_path, tmp_path / "model", arch="tiny")
    with pytest.raises(ModelError, match="does not exist"):
        import_osdiff(tmp_path / "missing.ckpt", lightning_path, tmp_path / "model", arch="tiny")
