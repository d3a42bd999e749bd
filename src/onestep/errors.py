"""The project's own error types. Anything a user can cause raises one of these; the CLI prints
its message on one line and exits non-zero."""


class OneStepError(Exception):
    """Base class of every error caused by bad input, a bad file or a bad model folder."""


class StreamError(OneStepError):
    """A compressed file is truncated, corrupted, of an unknown version or from another model."""


class ImageError(OneStepError):
    """An input image cannot be read or is of a kind we refuse (alpha, too large, ...)."""


class ModelError(OneStepError):
    """A model folder or checkpoint is missing, incomplete or does not match the architecture."""


class ConfigError(OneStepError):
    """A configuration file or option is invalid."""
