"""A method that lives in this one folder and nowhere in `onestep`: the proof that a method is one package.

Registered at run time through `ONESTEP_METHODS=method_plugin_example` (with `tests/` on the path). Its
composition (`model.py`) uses onestep's stage parts and one class of its own, `PluginGatedGenerator`, so a
model folder made from it can only be loaded once the method is registered.
"""

from onestep.methods.registry import Method

METHOD = Method(
    name="plugin-example",
    description="test method: pixel unshuffle, latent hyperprior codec, a gated conv generator",
    architectures={"tiny": "method_plugin_example.model:tiny"},
    tasks={"stage1": "onestep.train.stage1:TASK"},
    bench={"tiny": {"arch": "tiny", "size": "64x64", "dtypes": "float32"}},
)
