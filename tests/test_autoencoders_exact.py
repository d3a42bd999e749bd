"""The exact autoencoders (pixel unshuffle and the identity) under the shared autoencoder contract."""

from autoencoder_testing import AutoencoderContract

from onestep.autoencoders.base import PixelSpace
from onestep.autoencoders.space_to_depth import SpaceToDepth


class TestSpaceToDepthContract(AutoencoderContract):
    exact = True

    def make_autoencoder(self) -> SpaceToDepth:
        return SpaceToDepth(8)


class TestPixelSpaceContract(AutoencoderContract):
    exact = True
    size = (7, 5)

    def make_autoencoder(self) -> PixelSpace:
        return PixelSpace()
