"""TAEF2: the released weights round-trip a Kodak image; file loading, the subpixel head, clear errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from autoencoder_testing import AutoencoderContract
from PIL import Image

from onestep.autoencoders.taef2 import TAEF2, TAEF2_DIR_VARIABLE, TAEF2_FILES
from onestep.errors import ConfigError, ModelError

KODIM23 = "data/kodak/kodim23.png"


def _released(shared, decoder_head: str = "full") -> TAEF2:
    return TAEF2.from_folder(shared("weights/taef2", KODIM23), decoder_head)


def _kodak_crop(shared) -> torch.Tensor:
    pixels = np.asarray(Image.open(shared(KODIM23)).convert("RGB"))[64:320, 128:512]  # 256 x 384, keeps it fast
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.clamp(-1, 1) - b) / 2).pow(2).mean()
    return float(10 * torch.log10(1 / mse))


def _save_fp16(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save({k: v.half() for k, v in state.items()}, path)
    return path


def test_released_weights_round_trip_kodak(shared) -> None:
    model = _released(shared)
    x = _kodak_crop(shared)
    with torch.no_grad():
        latent = model.encode(x)
        reconstruction = model.decode(latent)
    assert latent.shape == (1, 32, 256 // 8, 384 // 8)
    assert reconstruction.shape == x.shape
    assert _psnr(reconstruction, x) > 28
    # TAEF2 latents are FLUX.2's normalised ones: unit-ish scale, hence scaling factor 1
    assert 0.5 < float(latent.std()) < 1.5 and abs(float(latent.mean())) < 0.3


@pytest.mark.parametrize("head", ["subpixel", "light"])
def test_released_weights_load_under_cheaper_heads(shared, head: str) -> None:
    full, cheap = _released(shared), _released(shared, head)
    start = cheap.decoder.head_start
    full_state = full.decoder.state_dict()
    for key, value in cheap.decoder.state_dict().items():
        if int(key.split(".")[0]) < start:
            assert torch.equal(value, full_state[key])
    assert torch.equal(cheap.encoder.state_dict()["0.weight"], full.encoder.state_dict()["0.weight"])
    with torch.no_grad():
        assert cheap.decode(torch.randn(1, 32, 4, 6)).shape == (1, 3, 32, 48)


def test_from_taesd_files_round_trip_with_random_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TAEF2().eval()
    encoder = _save_fp16(model.encoder.state_dict(), tmp_path / "enc.pth")
    decoder = _save_fp16(model.decoder.state_dict(), tmp_path / "dec.pth")
    loaded = TAEF2.from_taesd_files(encoder, decoder)
    assert next(loaded.parameters()).dtype == torch.float32
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.half().float())


@pytest.mark.parametrize("head", ["subpixel", "light"])
def test_cheaper_head_shapes_and_pretrained_round_trip(tmp_path: Path, head: str) -> None:
    torch.manual_seed(0)
    model = TAEF2(decoder_head=head).eval()
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        latent = model.encode(x)
        assert latent.shape == (1, 32, 4, 6)
        assert model.decode(latent).shape == x.shape
    model.save_pretrained(tmp_path / "m")
    loaded = TAEF2.from_pretrained(tmp_path / "m")
    assert loaded.config["decoder_head"] == head
    with torch.no_grad():
        assert torch.equal(loaded.decode(latent), model.decode(latent))


def test_loading_errors_are_model_errors(tmp_path: Path) -> None:
    model = TAEF2()
    encoder = _save_fp16(model.encoder.state_dict(), tmp_path / "enc.pth")
    decoder = _save_fp16(model.decoder.state_dict(), tmp_path / "dec.pth")
    with pytest.raises(ModelError, match="does not exist"):
        TAEF2.from_taesd_files(tmp_path / "missing.pth", decoder)
    with pytest.raises(ModelError, match="enc.pth do not fit TinyDecoder"):
        TAEF2.from_taesd_files(encoder, encoder)  # the encoder file where the decoder belongs
    with pytest.raises(ModelError, match="wrong shapes"):
        TAEF2.from_taesd_files(
            _save_fp16(TAEF2(latent_channels=16).encoder.state_dict(), tmp_path / "e16.pth"), decoder
        )
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(ModelError, match="plain state dict"):
        TAEF2.from_taesd_files(tmp_path / "list.pth", decoder)
    torch.save(model.encoder, tmp_path / "module.pth")  # a pickled module: refused by weights_only
    with pytest.raises(ModelError, match="cannot read"):
        TAEF2.from_taesd_files(tmp_path / "module.pth", decoder)


def test_unknown_decoder_head_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="decoder_head"):
        TAEF2(decoder_head="bicubic")


class TestTAEF2Contract(AutoencoderContract):
    def make_autoencoder(self) -> TAEF2:
        return TAEF2(decoder_head="light")


def test_from_folder_reads_the_released_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = TAEF2().eval()
    for part, name in zip((model.encoder, model.decoder), TAEF2_FILES):
        _save_fp16(part.state_dict(), tmp_path / name)
    expected = TAEF2.from_taesd_files(*(tmp_path / name for name in TAEF2_FILES))
    assert TAEF2.from_folder(tmp_path).encoder_fingerprint() == expected.encoder_fingerprint()
    monkeypatch.setenv(TAEF2_DIR_VARIABLE, str(tmp_path))  # no folder given: the variable's
    assert TAEF2.from_folder().encoder_fingerprint() == expected.encoder_fingerprint()
    with pytest.raises(ModelError, match=f"does not hold the TAEF2 weights.*{TAEF2_DIR_VARIABLE}"):
        TAEF2.from_folder(tmp_path / "empty")
