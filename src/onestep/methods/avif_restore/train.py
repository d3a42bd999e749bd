"""Train the restoration generator on precomputed AVIF pairs (see `pairs.py`), on a CPU, with resume.

    loss = Charbonnier + colour * Charbonnier(8x8 means) + perceptual * ENL0-dist
           + adversarial * hinge(PatchDiscriminator)

all quality levels in one model (each sample draws its level). The perceptual loss uses EfficientNet-Lite0
features, so the model is judged with other measures (SSIMULACRA2, MS-SSIM, PSNR, an EfficientNet-Lite1/2
distance). Weights are kept as an exponential moving average, which is what gets exported.

    python -m onestep.methods.avif_restore.train run --pairs packed/avif-pairs --out runs/avif-restore
    python -m onestep.methods.avif_restore.train export --out runs/avif-restore -o src/onestep/weights/NAME
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ...codecs.avif_base import AvifBaseCodec, array_to_image
from ...eval.perceptual import EfficientNetDistance
from .model import ARCHITECTURES, avif_restore_model

HELD_OUT_EVERY = 50  # pair files whose index is a multiple of this are validation, never trained on


@dataclass
class TrainConfig:
    architecture: str = "full"
    steps: int = 4000
    batch: int = 8
    crop: int = 192
    lr: float = 3e-4
    lr_final: float = 3e-5
    perceptual: float = 0.1
    perceptual_batch: int = 4  # the feature loss on the first samples only: it is most of a step's CPU time
    colour: float = 1.0  # the 8x8 means kept: feature losses alone let colours drift (seen in 1.0 as a warm cast)
    adversarial: float = 0.005
    adversarial_start: int = 500
    ema: float = 0.998
    checkpoint_every: int = 100
    validate_every: int = 250
    seed: int = 0


class PatchDiscriminator(nn.Module):
    """A small spectrally normalised patch discriminator (70-ish px receptive field) scoring B x 1 x h x w."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width):
            layers += [spectral_norm(nn.Conv2d(channels, out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            channels = out
        layers.append(spectral_norm(nn.Conv2d(channels, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PairSampler:
    """Random aligned crops (base layer, original) with a random quality level; rescans the pair folder so
    training can start while the cache is still being made."""

    def __init__(self, folder: Path, codec: AvifBaseCodec, crop: int, train: bool = True) -> None:
        self.folder, self.codec, self.crop, self.train = folder, codec, crop, train
        self.files: list[Path] = []
        self.rescan()

    def rescan(self) -> None:
        files = sorted(self.folder.glob("[0-9]*.npz"))
        held_out = [f for f in files if int(f.stem) % HELD_OUT_EVERY == 0]
        self.files = [f for f in files if f not in held_out] if self.train else held_out

    def pair(self, file: Path, quality: int) -> tuple[np.ndarray, np.ndarray]:
        with np.load(file) as data:
            target = data["target"]
            payload = data[f"q{quality}"].tobytes()
        base, _, _ = self.codec.decode_base(payload, target.shape[:2])
        return base, target

    def sample(self, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor, int]:
        quality = rng.randrange(len(self.codec.levels))
        base, target = self.pair(rng.choice(self.files), quality)
        while min(target.shape[:2]) < self.crop:  # a few training images are smaller than a crop
            base, target = self.pair(rng.choice(self.files), quality)
        if rng.random() < 0.5:
            base, target = base[:, ::-1], target[:, ::-1]
        # Offsets on the 8-pixel grid keep the phase between AV1's blocks, the reduced base layer's pixels
        # and the generator's 4x4 blocks as it is when a whole image is decoded.
        h, w = target.shape[:2]
        side = self.crop
        top = rng.randrange(0, (h - side) // 8 + 1) * 8
        left = rng.randrange(0, (w - side) // 8 + 1) * 8
        window = (slice(top, top + side), slice(left, left + side))
        return array_to_image(base[window]), array_to_image(target[window]), quality

    def batch(self, rng: random.Random, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        samples = [self.sample(rng) for _ in range(size)]
        context = torch.cat([self.codec.condition(q, grey=False) for _, _, q in samples])
        return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples]), context


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """On [0, 1] images."""
    return ((0.5 * (x - y)).square() + eps * eps).sqrt().mean()


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    mse = (0.5 * (x.clamp(-1, 1) - y)).square().mean().item()
    return 10 * math.log10(1 / max(mse, 1e-12))


@torch.no_grad()
def validate(generator: nn.Module, sampler: PairSampler, perceptual: nn.Module) -> dict[str, float]:
    """Mean gain over the base layer on held-out pairs, per rate regime (1/4, 1/2, full resolution)."""
    gains: dict[str, list[float]] = {}
    for file in sampler.files:
        for quality in sampler.codec.qualities:
            base, target = (array_to_image(a)[None] for a in sampler.pair(file, quality))
            out = generator(base, sampler.codec.condition(quality, grey=False))
            regime = f"1/{sampler.codec.levels[quality][0]}"
            gains.setdefault(f"psnr_gain {regime}", []).append(psnr(out, target) - psnr(base, target))
            d_out, d_base = perceptual(out.clamp(-1, 1), target).item(), perceptual(base, target).item()
            gains.setdefault(f"enl0_gain {regime}", []).append(d_base - d_out)
    return {k: float(np.mean(v)) for k, v in gains.items()}


def run(pairs: Path, out: Path, config: TrainConfig) -> None:
    torch.set_num_threads(1)  # the other core stays usable
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    out.mkdir(parents=True, exist_ok=True)
    model = avif_restore_model(config.architecture)
    codec, generator = model.codec, model.generator
    generator.train()
    ema = copy.deepcopy(generator).requires_grad_(False)
    discriminator = PatchDiscriminator()
    perceptual = EfficientNetDistance().eval()
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=(0.5, 0.99))
    step = 0
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        generator.load_state_dict(state["generator"])
        ema.load_state_dict(state["ema"])
        discriminator.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step = state["step"]
        rng.seed(config.seed + step)
        print(f"resumed at step {step}", flush=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    train_pairs = PairSampler(pairs, codec, config.crop)
    val_pairs = PairSampler(pairs, codec, config.crop, train=False)
    log = (out / "log.jsonl").open("a")
    started, first_step = time.time(), step
    while step < config.steps:
        if step % 100 == 0:
            train_pairs.rescan()
        progress = step / max(config.steps - 1, 1)
        lr = config.lr_final + 0.5 * (config.lr - config.lr_final) * (1 + math.cos(math.pi * progress))
        for group in opt_g.param_groups:
            group["lr"] = lr
        base, target, context = train_pairs.batch(rng, config.batch)
        output = generator(base, context)
        pixel = charbonnier(output, target)
        colour = charbonnier(F.avg_pool2d(output, 8), F.avg_pool2d(target, 8))
        distance = perceptual(output[: config.perceptual_batch], target[: config.perceptual_batch]).mean()
        loss = pixel + config.colour * colour + config.perceptual * distance
        logs = {"step": step, "lr": lr, "pixel": pixel.item(), "colour": colour.item(), "enl0": distance.item()}
        adversarial_on = step >= config.adversarial_start and config.adversarial > 0
        if adversarial_on:
            fake_score = discriminator(output)
            g_adv = -fake_score.mean()
            loss = loss + config.adversarial * g_adv
            logs["g_adv"] = g_adv.item()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(generator.parameters(), 1.0)
        opt_g.step()
        if adversarial_on or step >= config.adversarial_start - 200:  # the discriminator warms up first
            d_loss = F.relu(1 - discriminator(target)).mean() + F.relu(1 + discriminator(output.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            logs["d"] = d_loss.item()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), generator.parameters()):
                e.lerp_(p, 1 - config.ema)
        step += 1
        logs["s_per_step"] = (time.time() - started) / (step - first_step)  # this session's steps only
        if step % 10 == 0:
            log.write(json.dumps(logs) + "\n")
            log.flush()
        if step % config.checkpoint_every == 0 or step == config.steps:
            state = {
                "generator": generator.state_dict(),
                "ema": ema.state_dict(),
                "discriminator": discriminator.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "step": step,
            }
            torch.save(state, out / "checkpoint.tmp")
            (out / "checkpoint.tmp").replace(checkpoint)
            print(f"step {step}: {json.dumps(logs)}", flush=True)
        if step % config.validate_every == 0 and val_pairs.files:
            val_pairs.rescan()
            gains = validate(ema, val_pairs, perceptual)
            print(f"validation at step {step} (EMA, {len(val_pairs.files)} held-out crops): {gains}", flush=True)
            log.write(json.dumps({"step": step, "validation": gains}) + "\n")
    print(f"done: {step} steps in {(time.time() - started) / 3600:.2f} h this session", flush=True)


def export(out: Path, folder: Path, pairs: Path, hours: float | None) -> None:
    """The EMA generator of the last checkpoint as a model folder, with `training.json`."""
    config = TrainConfig(**json.loads((out / "config.json").read_text()))
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = avif_restore_model(config.architecture)
    model.generator.load_state_dict(state["ema"])
    model.save_pretrained(folder)
    training = {
        "loss_networks": ["efficientnet-lite0"],
        "data": f"{pairs.name}: one 256-px crop of each image of ../shared/data/train (bsds500, imagenet-sample, "
        f"urban100), every {HELD_OUT_EVERY}th held out, AVIF base layers at all {len(model.codec.levels)} levels",
        "steps": state["step"],
        "batch": config.batch,
        "crop": config.crop,
        "hours": hours,
        "config": asdict(config),
        "architecture": ARCHITECTURES[config.architecture],
    }
    (folder / "training.json").write_text(json.dumps(training, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--pairs", type=Path, required=True)
    run_parser.add_argument("--out", type=Path, required=True)
    for name, value in asdict(TrainConfig()).items():
        run_parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    export_parser = sub.add_parser("export")
    export_parser.add_argument("--out", type=Path, required=True)
    export_parser.add_argument("--pairs", type=Path, default=Path("packed/avif-pairs"))
    export_parser.add_argument("--hours", type=float, default=None)
    export_parser.add_argument("-o", "--folder", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "run":
        config = TrainConfig(**{k: getattr(args, k) for k in asdict(TrainConfig())})
        run(args.pairs, args.out, config)
    else:
        export(args.out, args.folder, args.pairs, args.hours)


if __name__ == "__main__":
    main()
