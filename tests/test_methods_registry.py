"""The registry of methods: built-ins, run-time registration, lazy references, error messages."""

import subprocess
import sys

import pytest
import torch

from onestep.errors import ConfigError
from onestep.methods import registry
from onestep.methods.registry import Method, get_method, methods, register_method, resolve, unregister_method
from onestep.train.tasks import TrainingTask


def test_builtin_methods_are_registered_with_importable_parts():
    known = methods()
    assert {"onedc", "taef2_latent"} <= set(known)
    for method in known.values():
        for reference in method.architectures.values():
            assert callable(resolve(reference)), reference
        for name in method.tasks:
            assert isinstance(method.task(name), TrainingTask) and method.task(name).name == name
        if method.importer:
            importer = resolve(method.importer)
            assert callable(importer.add_arguments) and callable(importer.run)
        for preset in method.configs:
            assert method.config_path(preset).is_file(), preset
        for name, preset in method.bench.items():
            assert preset["arch"] in method.architectures, name


def test_listing_methods_imports_no_torch():
    code = "import sys; from onestep.methods.registry import methods; methods(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_tiny_architecture_builds_through_the_registry():
    model = get_method("onedc").build("tiny", lora_rank=0)
    assert model.generator.config["lora_rank"] == 0 and "z-only" in model.modes


def test_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown method 'nope'.*onedc"):
        get_method("nope")
    with pytest.raises(ConfigError, match="no architecture 'huge'"):
        get_method("onedc").architecture("huge")
    with pytest.raises(ConfigError, match="no training task"):
        get_method("onedc").task("stage9")
    with pytest.raises(ConfigError, match="cannot be imported"):
        resolve("onestep.methods.nothing_here:build")


def test_register_at_run_time_and_refuse_a_taken_name():
    method = Method("tmp-method", "test", architectures={"tiny": "tiny:tiny_pipeline"})
    try:
        assert register_method(method) is method and get_method("tmp-method") is method
        assert register_method(method) is method  # the same entry again is fine
        with pytest.raises(ConfigError, match="already registered"):
            register_method(Method("tmp-method", "other", architectures={"tiny": "tiny:tiny_pipeline"}))
        pipeline = get_method("tmp-method").build("tiny", seed=3)
        assert isinstance(pipeline, torch.nn.Module)
    finally:
        unregister_method("tmp-method")
    assert "tmp-method" not in methods()


def test_a_method_needs_a_valid_name_and_an_architecture():
    with pytest.raises(ValueError):
        Method("bad name", "x", architectures={"a": "m:f"})
    with pytest.raises(ValueError):
        Method("empty", "x", architectures={})


def test_plugins_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(registry.PLUGINS_VARIABLE, "method_plugin_example")
    try:
        assert get_method("plugin-example").package == "method_plugin_example"
    finally:
        unregister_method("plugin-example")
        registry._loaded.discard("method_plugin_example")


def test_a_method_from_the_tests_folder_alone_compresses_and_decompresses_through_the_cli(tmp_path, monkeypatch):
    """The method in tests/method_plugin_example/ is one folder: registered through ONESTEP_METHODS, built by
    the registry, saved, and coded by `onestep compress` / `decompress` in a new process."""
    from pathlib import Path

    from tiny import run_cli

    from onestep import api
    from onestep.images import read_image, write_png

    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", tests)
    monkeypatch.setenv(registry.PLUGINS_VARIABLE, "method_plugin_example")
    try:
        model = get_method("plugin-example").build("tiny", seed=5)
    finally:
        unregister_method("plugin-example")
        registry._loaded.discard("method_plugin_example")
    folder = model.save_pretrained(tmp_path / "model")
    image = torch.randint(0, 256, (3, 45, 70), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    write_png(tmp_path / "in.png", image)
    compress = ["compress", tmp_path / "in.png", "-o", tmp_path / "out.osc", "--model", folder]
    decompress = ["decompress", tmp_path / "out.osc", "-o", tmp_path / "out.png", "--model", folder]
    packaged, decoded = run_cli([compress, decompress], threads=1)
    assert packaged.status == 0 and decoded.status == 0, packaged.stderr + decoded.stderr
    assert (tmp_path / "out.osc").read_bytes() == api.compress(model, image)
    assert torch.equal(read_image(tmp_path / "out.png"), api.decompress(model, (tmp_path / "out.osc").read_bytes()))
    # Without the plugin the folder is unknown: its generator class exists nowhere in onestep.
    monkeypatch.delenv(registry.PLUGINS_VARIABLE)
    monkeypatch.delenv("PYTHONPATH")
    (refused,) = run_cli([decompress + ["-f"]], threads=1)
    assert refused.status == 1 and "PluginGatedGenerator" in refused.stderr and refused.stderr.count("\n") == 1


def test_the_taef2_latent_method_builds_its_architecture():
    model = get_method("taef2_latent").build("full")
    assert model.name == "onestep-default" and model.autoencoder.latent_channels == 32
    assert type(model.codec).__name__ == "LatentHyperpriorCodec" and "z-only" in model.modes


def test_stream_formats_come_from_the_methods():
    from onestep.methods.registry import stream_formats

    formats = stream_formats()
    assert formats["onedc-bin"] == "onestep.methods.onedc.bin_format"
    for name, reference in formats.items():
        module = resolve(reference)
        assert module.SUFFIX.startswith(".") and module.DESCRIPTION, name
        assert callable(module.compress_file) and callable(module.decompress_file), name
    clash = Method("tmp-clash", "test", architectures={"tiny": "tiny:tiny_pipeline"}, stream_formats={"onedc-bin": "x"})
    try:
        register_method(clash)
        with pytest.raises(ConfigError, match="two methods register the stream format 'onedc-bin'"):
            stream_formats()
    finally:
        unregister_method("tmp-clash")
