"""Our models as evaluated codecs: every quality of a model with rate control is a rate point (a real
AVIF-restoration model through onestep.api), and training.json says which networks its losses used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import features

from onestep.errors import ModelError
from onestep.eval.cli import trained_on
from onestep.eval.metrics import ENL0_DIST, ENL2_DIST, FD_ENL0, PSNR
from onestep.eval.models import ModelCodec, read_loss_networks


@pytest.fixture(scope="module")
def rate_controlled_folder(tmp_path_factory):
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    from onestep.methods.avif_restore.model import avif_restore_model

    torch.manual_seed(0)
    model = avif_restore_model("tiny", levels=((4, 10), (2, 30), (1, 60)), default_quality=1).eval()
    return model.save_pretrained(tmp_path_factory.mktemp("models") / "rc")


def test_every_quality_of_a_rate_controlled_model_is_a_rate_point(rate_controlled_folder):
    codec = ModelCodec("rc", [rate_controlled_folder])
    folder = str(rate_controlled_folder)
    assert codec.settings == ((folder, 0), (folder, 1), (folder, 2))
    assert [codec.setting_label(s) for s in codec.settings] == ["q=0", "q=1", "q=2"]
    assert len({codec.cache_key(s) for s in codec.settings}) == 3
    g = torch.Generator().manual_seed(1)
    image = (torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8, generator=g), size=(48, 64), mode="bicubic")[0]
             .clamp(0, 1).mul(255).round().to(torch.uint8))  # fmt: skip
    sizes = []
    for setting in codec.settings:
        data = codec.encode(setting, image)
        assert codec.decode(setting, data).shape == image.shape
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # qualities rise in rate
    assert codec.loss_networks is None and codec.loss_networks_note.startswith("unknown: no training.json in ")


def test_training_json_marks_the_metrics_on_its_networks(tmp_path):
    infos = [PSNR, ENL0_DIST, ENL2_DIST, FD_ENL0]
    (tmp_path / "training.json").write_text(json.dumps({"loss_networks": ["efficientnet-lite0", "vgg16"]}))
    assert read_loss_networks(tmp_path) == ["efficientnet-lite0", "vgg16"]

    class Trained:  # what `trained_on` reads of a ModelCodec
        loss_networks = ["efficientnet-lite0", "vgg16"]
        loss_networks_note = "from training.json"

    assert trained_on(Trained(), infos) == (["enl0-dist", "fd-enl0"], "from training.json")
    Trained.loss_networks = ["efficientnet-lite2"]
    assert trained_on(Trained(), infos)[0] == ["enl2-dist"]
    Trained.loss_networks = None
    assert trained_on(Trained(), infos)[0] is None
    assert trained_on(object(), infos) == ([], "not a learned codec")  # baselines
    assert read_loss_networks(tmp_path / "absent") is None
    (tmp_path / "training.json").write_text('{"loss_networks": "efficientnet-lite0"}')
    with pytest.raises(ModelError, match="loss_networks"):
        read_loss_networks(tmp_path)


def test_the_old_default_model_records_its_enl0_loss():
    import onestep

    folder = Path(onestep.__file__).parent / "weights" / "onestep-default-1.1"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not packaged")
    assert read_loss_networks(folder) == ["efficientnet-lite0"]
