"""The residual conv generator under the shared generator contract."""

from generator_testing import GeneratorContract

from onestep.generators.conv import ConvGenerator


class TestConvGeneratorContract(GeneratorContract):
    feature_channels = 32
    latent_channels = 12

    def make_generator(self) -> ConvGenerator:
        return ConvGenerator(self.feature_channels, self.latent_channels, width=32, depth=1)
