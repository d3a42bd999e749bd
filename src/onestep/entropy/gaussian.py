"""The Gaussian conditional: y given per-element means and scales (from a hyperprior or a context model).

Training-time bits come from `rate.gaussian_bits`. Real coding: the codec passes symbols round(y - mean)
and per-symbol scale indices into a discrete scale table; each scale has a zero-mean integer frequency
table (`tables.py`) and the symbols are coded with the indexed coder of `coder.py`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from ..errors import StreamError
from .base import EntropyModel, check_shape
from .coder import CodingTables, StreamDecoder, StreamEncoder
from .escape import escape_shift
from .rate import add_uniform_noise, gaussian_bits, ste_round
from .tables import NUM_SCALES, SCALE_MAX, SCALE_MIN, gaussian_tables, scale_values

# Symbols are clamped (like the reference codec's int16 cast) on both sides, so y_hat always matches the stream.
MAX_SYMBOL = 30000

# The coder's names from before it served other tables too.
GaussianStreamEncoder = StreamEncoder
GaussianStreamDecoder = StreamDecoder


@functools.lru_cache(maxsize=8)
def _models(scale_min: float, scale_max: float, num_scales: int) -> CodingTables:
    tables = gaussian_tables(scale_min, scale_max, num_scales)
    return CodingTables.build(tables.freqs, tables.centers, [escape_shift(s) for s in tables.scales])


class GaussianConditional(EntropyModel):
    """Gaussian on residuals (x - means) with a discrete scale table. No learnable parameters and no
    state-dict entries. As an `EntropyModel` its parameters are `scales` and `means` (x's shape)."""

    def __init__(self, scale_min: float = SCALE_MIN, scale_max: float = SCALE_MAX, num_scales: int = NUM_SCALES):
        super().__init__()
        if not (0 < scale_min < scale_max) or not (2 <= num_scales <= 65536):
            raise ValueError(f"bad scale table: min {scale_min}, max {scale_max}, {num_scales} scales")
        self.scale_min, self.scale_max, self.num_scales = float(scale_min), float(scale_max), int(num_scales)
        self._log_min = math.log(scale_min)
        self._log_step = (math.log(scale_max) - self._log_min) / (num_scales - 1)
        table = torch.tensor(scale_values(scale_min, scale_max, num_scales), dtype=torch.float32)
        self.register_buffer("scale_table", table, persistent=False)
        # Bin edges exp(ln min + i * step), i = 1..n-1, rounded once from float64: comparing against fixed
        # float32 edges is exact on every device, where a float32 log may differ in its last bit.
        edges = [math.exp(self._log_min + i * self._log_step) for i in range(1, num_scales)]
        self.register_buffer("_edges", torch.tensor(edges, dtype=torch.float32), persistent=False)

    def scale_index(self, scales: torch.Tensor) -> torch.Tensor:
        """int64 table index of each scale: the reference's truncation of (ln(max(s, 1e-5)) - ln(min)) / step
        into 0..n-1, computed as a count of bin edges <= s (no log, so bit-identical across devices).
        NaN goes to 0."""
        s = torch.nan_to_num(scales.detach().float(), nan=0.0)
        edges = self._edges.to(s.device)
        return torch.bucketize(s.contiguous(), edges, right=True).long()

    def _models(self) -> CodingTables:
        return _models(self.scale_min, self.scale_max, self.num_scales)

    def encoder(self) -> StreamEncoder:
        """A stream of several chunks (a context model's passes), each coded with `add(symbols, indexes)`."""
        return StreamEncoder(self._models())

    def decoder(self, data: bytes) -> StreamDecoder:
        return StreamDecoder(self._models(), data)

    @staticmethod
    def symbols(x: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """round(x - means) in float32, clamped to the coder's range: what a real stream carries."""
        return torch.round(x.float() - means.float()).clamp(-MAX_SYMBOL, MAX_SYMBOL)

    # --- the EntropyModel interface ------------------------------------------------------------------

    def estimate(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = _params(x.shape, params)
        with torch.autocast(device_type=x.device.type, enabled=False):
            residual = x.float() - means.float()
            x_hat = ste_round(residual) + means.float()
            coded = add_uniform_noise(residual) if self.training else torch.round(residual)
            bits = gaussian_bits(coded, scales).flatten(1).sum(1)
        return x_hat, bits

    def compress(self, x: torch.Tensor, **params: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        scales, means = _params(x.shape, params)
        q = self.symbols(x, means)
        encoder = self.encoder()
        encoder.add(q.to(torch.int32), self.scale_index(scales))
        return encoder.finish(), q + means.float()

    def decompress(self, data: bytes, shape: Sequence[int], **params: torch.Tensor) -> torch.Tensor:
        scales, means = _params(tuple(shape), params)
        if not data and scales.numel():  # every symbol costs something, so a real stream is never empty
            raise StreamError("the entropy-coded stream is empty")
        decoder = self.decoder(data)
        q = decoder.read(self.scale_index(scales))
        decoder.finish()
        return q.to(device=means.device, dtype=torch.float32) + means.float()

    def extra_repr(self) -> str:
        return f"scale_min={self.scale_min}, scale_max={self.scale_max}, num_scales={self.num_scales}"


def _params(shape: Sequence[int], params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The `scales` and `means` keyword parameters, both of x's shape."""
    if set(params) != {"scales", "means"}:
        raise TypeError(f"the Gaussian conditional takes the parameters scales and means, got {sorted(params)}")
    check_shape("scales", params["scales"], shape)
    check_shape("means", params["means"], shape)
    return params["scales"], params["means"]
