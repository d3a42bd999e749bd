"""ModelMixin: constructor arguments as config, nested models, save/load, strict loading, fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from onestep.errors import ModelError
from onestep.modeling import ModelMixin, model_from_config, shape_mismatches


class _Leaf(ModelMixin):
    def __init__(self, width: int = 3, scale: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.scale = scale


class _Pair(ModelMixin):
    def __init__(self, left: _Leaf, right: _Leaf, name: str = "pair") -> None:
        super().__init__()
        self.left, self.right, self.name = left, right, name


def test_config_records_defaults_and_nested_models(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pair = _Pair(_Leaf(4), _Leaf(scale=2.0))
    config = pair.to_config()
    assert config["_class"] == "test_modeling:_Pair" and config["name"] == "pair"
    assert config["left"] == {"_class": "test_modeling:_Leaf", "width": 4, "scale": 1.0}
    pair.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text()) == {"_format": 2, **config}
    loaded = _Pair.from_pretrained(tmp_path / "m")
    assert loaded.right.scale == 2.0 and loaded.to_config() == config
    for key, value in pair.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert loaded.fingerprint() == pair.fingerprint()


def test_fingerprint_follows_the_weights() -> None:
    torch.manual_seed(0)
    leaf = _Leaf()
    before = leaf.fingerprint()
    with torch.no_grad():
        leaf.linear.bias[0] += 1e-6
    assert leaf.fingerprint() != before and len(before) == 8


def test_loading_errors_are_one_line_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="config.json is missing"):
        _Leaf.from_pretrained(tmp_path)
    _Leaf(3).save_pretrained(tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    (tmp_path / "a" / "config.json").write_text(json.dumps({**config, "width": 5}))
    with pytest.raises(ModelError, match="wrong shapes"):
        _Leaf.from_pretrained(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        _Leaf.from_pretrained(tmp_path / "a")
    with pytest.raises(ModelError, match="unknown model class"):
        model_from_config({"_class": "NoSuchModel"})
    with pytest.raises(ModelError, match="not a _Pair"):
        _Leaf(3).save_pretrained(tmp_path / "b")
        _Pair.from_pretrained(tmp_path / "b")


def test_part_classes_are_found_without_importing_their_module_first() -> None:
    # a fresh process, so that no other test has imported the module already
    code = (
        "import sys; from onestep.modeling import model_from_config;"
        "assert 'onestep.autoencoders.space_to_depth' not in sys.modules;"
        "m = model_from_config({'_class': 'SpaceToDepth', 'factor': 2}); print(m.latent_channels)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "12"


def test_shape_mismatches_names_each_kind() -> None:
    problems = shape_mismatches({"a": (1,), "b": (2,), "c": (3,)}, {"a": (1,), "b": (4,), "d": (5,)})
    assert problems == ["1 missing (c)", "1 unexpected (d)", "1 with wrong shapes (b is (4,), expected (2,))"]
    assert shape_mismatches({"a": (1,)}, {"a": (1,)}) == []


def test_fingerprint_is_stored_once_and_trusted_on_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a folder reads the fingerprint from the weights file's header instead of hashing the weights; a
    weight changed after loading is noticed; `onestep verify` recomputes and compares."""
    import onestep.modeling as modeling
    from onestep.modeling import WEIGHTS_NAME, stored_fingerprint

    torch.manual_seed(0)
    leaf = _Leaf(5)
    leaf.save_pretrained(tmp_path / "m")
    assert stored_fingerprint(tmp_path / "m" / WEIGHTS_NAME) == leaf.fingerprint()

    def no_hashing(state):
        raise AssertionError("hashed the weights")

    with monkeypatch.context() as patch:
        patch.setattr(modeling, "state_dict_fingerprint", no_hashing)
        loaded = _Leaf.from_pretrained(tmp_path / "m")
        assert loaded.fingerprint() == leaf.fingerprint()
    with torch.no_grad():
        loaded.linear.weight[0, 0] += 1
    assert loaded.fingerprint() != leaf.fingerprint()

    from onestep.cli import main

    assert main(["verify", str(tmp_path / "m")]) == 0
    data = bytearray((tmp_path / "m" / WEIGHTS_NAME).read_bytes())
    data[-1] ^= 0x40  # damage a weight, not the header
    (tmp_path / "m" / WEIGHTS_NAME).write_bytes(bytes(data))
    assert main(["verify", str(tmp_path / "m")]) == 1


def test_streamed_weights_files_carry_the_fingerprint(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from onestep.methods.importing import write_safetensors_streaming
    from onestep.modeling import WEIGHTS_NAME, state_dict_fingerprint, stored_fingerprint

    torch.manual_seed(0)
    state = _Pair(_Leaf(4), _Leaf(3)).state_dict()
    specs = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
    write_safetensors_streaming(tmp_path / WEIGHTS_NAME, specs, state.__getitem__)
    assert stored_fingerprint(tmp_path / WEIGHTS_NAME) == state_dict_fingerprint(state)
    loaded = load_file(str(tmp_path / WEIGHTS_NAME))
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_saved_files_get_a_plain_new_files_permissions(tmp_path: Path) -> None:
    """safetensors replaces the file it writes with one of mode 0o600; a saved model is for sharing."""
    _Pair(_Leaf(4), _Leaf()).save_pretrained(tmp_path / "m")
    probe = tmp_path / "probe"
    probe.touch()
    expected = probe.stat().st_mode & 0o777
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == expected
