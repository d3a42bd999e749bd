"""The factorized prior: Ballé et al.'s non-parametric univariate density, one per channel (the "entropy
bottleneck" of "Variational image compression with a scale hyperprior", 2018), as OSDiff codes its z.

Each channel's cumulative c(x) = sigmoid(f(x)) is a monotone chain of K+1 affine maps with positive
matrices (softplus of the raw ones) and K gated tanh nonlinearities; the likelihood of a quantized value
is c(x + 1/2) - c(x - 1/2). `quantiles` (C x 1 x 3) hold each channel's tail quantiles and median; the
auxiliary loss (`aux_loss`, trained by its own optimizer) moves them to where the cumulative's logits
equal -t, 0 and t, t = ln(2 / tail_mass - 1).

Parameters and buffers are named and shaped as CompressAI 1.2.4's `EntropyBottleneck`, which OSDiff's
checkpoints carry: `_matrix{i}` (C x f_{i+1} x f_i), `_bias{i}` (C x f_{i+1} x 1), `_factor{i}`
(C x f_{i+1} x 1), `quantiles` and the buffer `target`, with filters f = (1, 3, 3, 3, 3, 1). Loading
also accepts CompressAI >= 1.2.7's names (`matrices.{i}`, `biases.{i}`, `factors.{i}`) and drops the
coder state CompressAI keeps (`_offset`, `_quantized_cdf`, `_cdf_length`): the coding tables here are
our own and are rebuilt from the weights.

Real coding: symbol v = round(x - median) of channel c is coded with channel c's integer frequency table
over v in -m_c..M_c (m_c = ceil(median - lower quantile), M_c = ceil(upper quantile - median), both >= 0)
plus an escape symbol for values outside, sent exactly by `escape.py`. The tables are built
deterministically: the density evaluated in float64 with elementwise numpy arithmetic and the `math`
module's functions (no BLAS, no vectorized transcendental kernels, whose last bits differ across CPUs),
then `tables.quantize_pmf`'s integer arithmetic. They are cached per weights.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import StreamError
from .base import EntropyModel, no_params
from .coder import CodingTables, StreamDecoder, StreamEncoder
from .rate import lower_bound, ste_round
from .tables import PRECISION, quantize_pmf

# CompressAI's coder state and its newer parameter names (see the module docstring).
_CODER_BUFFERS = ("_offset", "_quantized_cdf", "_cdf_length")
_RENAMED = (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor"))
_LIKELIHOOD_BOUND_KEY = "likelihood_lower_bound.bound"
MAX_SYMBOL = 1 << 30  # symbols are clamped to +-this so that escapes stay within the escape code's range
# Tables by the hash of the weights they were built from, outside the modules (constriction's models do
# not pickle, and a module must survive deepcopy); a few sets of weights are in use at a time.
_TABLES: OrderedDict[str, _FactorizedTables] = OrderedDict()
_TABLES_KEPT = 8


class FactorizedPrior(EntropyModel):
    """A learned density per channel for B x C x H x W tensors. Takes no entropy parameters."""

    def __init__(
        self,
        channels: int,
        filters: Sequence[int] = (3, 3, 3, 3),
        init_scale: float = 10.0,
        tail_mass: float = 1e-9,
        likelihood_bound: float = 1e-9,
    ) -> None:
        super().__init__()
        if channels < 1 or not filters or any(f < 1 for f in filters):
            raise ValueError(f"bad factorized prior: {channels} channels, filters {tuple(filters)}")
        self.channels, self.filters = int(channels), tuple(int(f) for f in filters)
        self.init_scale, self.tail_mass, self.likelihood_bound = float(init_scale), float(tail_mass), likelihood_bound
        widths = (1, *self.filters, 1)
        scale = self.init_scale ** (1 / (len(self.filters) + 1))
        for i in range(len(self.filters) + 1):
            # softplus(init) = 1 / (scale * width): the chain starts as a spread-out logistic
            init = math.log(math.expm1(1 / scale / widths[i + 1]))
            self.register_parameter(f"_matrix{i}", nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.register_parameter(f"_bias{i}", nn.Parameter(torch.rand(channels, widths[i + 1], 1) - 0.5))
            if i < len(self.filters):
                self.register_parameter(f"_factor{i}", nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        quantiles = torch.tensor([-self.init_scale, 0.0, self.init_scale]).repeat(channels, 1, 1)
        self.quantiles = nn.Parameter(quantiles)
        target = math.log(2 / self.tail_mass - 1)
        self.register_buffer("target", torch.tensor([-target, 0.0, target]))

    # --- the density ---------------------------------------------------------------------------------

    def _layers(self) -> list[tuple[Tensor, Tensor, Tensor | None]]:
        n = len(self.filters) + 1
        return [
            (getattr(self, f"_matrix{i}"), getattr(self, f"_bias{i}"), getattr(self, f"_factor{i}", None))
            for i in range(n)
        ]

    def _logits_cumulative(self, values: Tensor, stop_gradient: bool) -> Tensor:
        """values C x 1 x N -> the cumulative's logits, C x 1 x N."""
        logits = values
        for matrix, bias, factor in self._layers():
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
                factor = factor.detach() if factor is not None else None
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if factor is not None:
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def _likelihood(self, values: Tensor) -> Tensor:
        lower = self._logits_cumulative(values - 0.5, stop_gradient=False)
        upper = self._logits_cumulative(values + 0.5, stop_gradient=False)
        # subtract on the side of the median where the sigmoids are small, for precision in the tails
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def medians(self) -> Tensor:
        """C medians (the quantization offsets)."""
        return self.quantiles[:, 0, 1]

    def forward(self, x: Tensor, training: bool | None = None) -> tuple[Tensor, Tensor]:
        """CompressAI's `EntropyBottleneck.forward`: (x + uniform noise when training, else round(x - median) +
        median; the likelihood of each element, bounded below by `likelihood_bound`)."""
        training = self.training if training is None else training
        self._check_input(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            values = x.float().transpose(0, 1)
            shape = values.shape
            values = values.reshape(self.channels, 1, -1)
            if training:
                values = values + torch.empty_like(values).uniform_(-0.5, 0.5)
            else:
                medians = self.medians().view(-1, 1, 1)
                values = torch.round(values - medians) + medians
            likelihood = lower_bound(self._likelihood(values), self.likelihood_bound)
            outputs = values.reshape(shape).transpose(0, 1)
            return outputs, likelihood.reshape(shape).transpose(0, 1)

    def aux_loss(self) -> Tensor:
        """CompressAI's `EntropyBottleneck.loss()`: sum over channels of |logits(quantiles) - target|; only
        `quantiles` get its gradient."""
        logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self.target).sum()

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"the factorized prior expects B x {self.channels} x H x W, got {tuple(x.shape)}")

    # --- the EntropyModel interface ------------------------------------------------------------------

    def estimate(self, x: Tensor, **params: Tensor) -> tuple[Tensor, Tensor]:
        """x_hat = round(x - median) + median with straight-through gradients; bits from the likelihood of
        x + noise (training) or of x_hat (eval)."""
        no_params(params)
        _, likelihood = self(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            medians = self.medians().view(1, -1, 1, 1)
            x_hat = ste_round(x.float() - medians) + medians
            return x_hat, -torch.log2(likelihood).flatten(1).sum(1)

    @torch.no_grad()
    def compress(self, x: Tensor, **params: Tensor) -> tuple[bytes, Tensor]:
        no_params(params)
        self._check_input(x)
        if not torch.isfinite(x).all():
            raise ValueError("the factorized prior can only code finite values")
        medians = self.medians().detach().float().view(1, -1, 1, 1)
        symbols = torch.round(x.float() - medians).clamp(-MAX_SYMBOL, MAX_SYMBOL)
        encoder = StreamEncoder(self.coding_tables().coding)
        encoder.add(symbols.to(torch.int32), _channel_indexes(symbols.shape))
        return encoder.finish(), symbols + medians

    @torch.no_grad()
    def decompress(self, data: bytes, shape: Sequence[int], **params: Tensor) -> Tensor:
        no_params(params)
        shape = tuple(int(s) for s in shape)
        if len(shape) != 4 or shape[1] != self.channels:
            raise ValueError(f"the factorized prior decodes B x {self.channels} x H x W, got {shape}")
        if not data and math.prod(shape):  # every symbol costs something, so a real stream is never empty
            raise StreamError("the factorized prior's stream is empty")
        decoder = StreamDecoder(self.coding_tables().coding, data)
        symbols = decoder.read(_channel_indexes(shape))
        decoder.finish()
        medians = self.medians().detach().float().view(1, -1, 1, 1)
        return symbols.to(device=medians.device, dtype=torch.float32) + medians

    # --- integer tables ------------------------------------------------------------------------------

    def coding_tables(self) -> _FactorizedTables:
        """The integer frequency tables of the current weights (built once per weights)."""
        arrays = [t.detach().cpu().float().numpy() for layer in self._layers() for t in layer if t is not None]
        arrays.append(self.quantiles.detach().cpu().float().numpy())
        digest = hashlib.sha256()
        for a in arrays:
            digest.update(repr(a.shape).encode())
            digest.update(np.ascontiguousarray(a).tobytes())
        key = digest.hexdigest()
        if key not in _TABLES:
            _TABLES[key] = _build_tables(self)
            while len(_TABLES) > _TABLES_KEPT:
                _TABLES.popitem(last=False)
        _TABLES.move_to_end(key)
        return _TABLES[key]

    # --- checkpoints ---------------------------------------------------------------------------------

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        for new, old in _RENAMED:
            for key in [k for k in state_dict if k.startswith(prefix + new)]:
                state_dict[prefix + old + key[len(prefix + new) :]] = state_dict.pop(key)
        for name in _CODER_BUFFERS:
            state_dict.pop(prefix + name, None)
        bound = state_dict.pop(prefix + _LIKELIHOOD_BOUND_KEY, None)
        if bound is not None and not math.isclose(float(bound.reshape(-1)[0]), self.likelihood_bound, rel_tol=1e-6):
            error_msgs.append(
                f"{prefix}{_LIKELIHOOD_BOUND_KEY} is {float(bound.reshape(-1)[0])}, "
                f"this model's likelihood_bound is {self.likelihood_bound}"
            )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return f"channels={self.channels}, filters={self.filters}, tail_mass={self.tail_mass}"


class _FactorizedTables:
    """Per channel c: symbols -minima[c]..maxima[c] (then the escape) and their integer frequencies."""

    def __init__(self, minima: np.ndarray, maxima: np.ndarray, freqs: list[np.ndarray]) -> None:
        self.minima, self.maxima, self.freqs = minima, maxima, freqs
        self.coding = CodingTables.build(freqs, minima, [0] * len(freqs))  # escapes: Elias-gamma


def _channel_indexes(shape: Sequence[int]) -> Tensor:
    b, c, h, w = shape
    return torch.arange(c, dtype=torch.int64).view(1, c, 1, 1).expand(b, c, h, w)


# Scalar functions of the `math` module, applied elementwise: the same last bit on every CPU.
def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


_SOFTPLUS = np.vectorize(_softplus, otypes=[np.float64])
_SIGMOID = np.vectorize(_sigmoid, otypes=[np.float64])
_TANH = np.vectorize(math.tanh, otypes=[np.float64])


def _logits_float64(layers: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], values: np.ndarray) -> np.ndarray:
    """values C x N (float64) -> logits C x N, summing each matrix product in a fixed order."""
    logits = values[:, None, :]  # C x 1 x N
    for matrix, bias, factor in layers:
        weights = _SOFTPLUS(matrix)  # C x out x in
        out = np.zeros((logits.shape[0], weights.shape[1], logits.shape[2]))
        for k in range(weights.shape[2]):
            out = out + weights[:, :, k : k + 1] * logits[:, k : k + 1, :]
        logits = out + bias
        if factor is not None:
            logits = logits + _TANH(factor) * _TANH(logits)
    return logits[:, 0, :]


def _build_tables(model: FactorizedPrior) -> _FactorizedTables:
    def f64(t: Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy().astype(np.float64)

    layers = [(f64(m), f64(b), None if f is None else f64(f)) for m, b, f in model._layers()]
    quantiles = f64(model.quantiles)[:, 0, :]
    medians = quantiles[:, 1]
    minima = np.maximum(np.ceil(medians - quantiles[:, 0]), 0).astype(np.int64)
    maxima = np.maximum(np.ceil(quantiles[:, 2] - medians), 0).astype(np.int64)
    lengths = minima + maxima + 1
    if not np.isfinite(quantiles).all() or lengths.max() >= (1 << PRECISION):
        raise ValueError(
            f"the factorized prior's quantiles span up to {lengths.max()} values, more than a "
            f"{PRECISION}-bit table can hold: train them (aux_loss) before coding"
        )
    samples = medians[:, None] - minima[:, None] + np.arange(lengths.max())[None, :]
    lower = _logits_float64(layers, samples - 0.5)
    upper = _logits_float64(layers, samples + 0.5)
    sign = -np.sign(lower + upper)
    pmf = np.abs(_SIGMOID(sign * upper) - _SIGMOID(sign * lower))
    freqs = []
    for c, n in enumerate(lengths):
        tail = _sigmoid(float(lower[c, 0])) + _sigmoid(-float(upper[c, n - 1]))
        freqs.append(np.array(quantize_pmf([*pmf[c, :n].tolist(), tail]), dtype=np.int64))
    return _FactorizedTables(minima, maxima, freqs)
