"""onestep: one-step diffusion image compression.

The data path, one package per stage::

    image -> autoencoders -> codecs (+ entropy) -> bitstream -> codecs -> generators -> autoencoders -> image

`methods` composes those parts into complete codecs, one package per method (`methods/registry.py`).
"""

__version__ = "0.1.0"
