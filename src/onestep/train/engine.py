"""The training loop on accelerate: CPU, one GPU or multi-GPU DDP, optional bf16 autocast.

A training *task* (built by the config's `tasks.TrainingTask`: `Stage1`, `Stage2`, a method's own) is one
module holding everything that trains, so DDP wraps it once; `forward(batch, step, phase)` returns the loss
of one optimizer's update. Per step:

    batch -> resolution schedule -> for each phase: forward, backward, clip, step that optimizer, zero all
    -> step every LR scheduler -> log / checkpoint / validate

Resume is exact: model tensors, optimizer and scheduler states, RNG states and the data position are
restored, and data randomness comes from (seed, step) rather than from the global RNG.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from torch import nn
from tqdm import tqdm

from ..errors import ConfigError, ModelError
from .augment import ResolutionSchedule
from .build import build_pipeline
from .checkpoint import TrainingState, find_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from .checkpoint import set_rng_state as restore_rng
from .config import dump_config
from .data import BatchPlan, TrainingImages, TrainingLatents, make_loader
from .tasks import find_task
from .validation import validate


def make_task(config: dict[str, Any], pipeline: nn.Module, dataset: torch.utils.data.Dataset) -> nn.Module:
    return find_task(config["task"], config["model"]["method"]).build(config, pipeline, dataset)


def make_dataset(config: dict[str, Any], pipeline: nn.Module) -> torch.utils.data.Dataset:
    data = config["data"]
    multiple = pipeline.pad_multiple
    if data["latents"]:
        dataset = TrainingLatents(data["train"], data["crop"], data["flip"])
        ds = pipeline.autoencoder.downsampling
        if dataset.meta.get("fingerprint") != pipeline.autoencoder.encoder_fingerprint():
            raise ConfigError("the latent shards were made by another autoencoder (encoder) than this model's")
        multiple = max(1, multiple // ds)
    else:
        dataset = TrainingImages(data["train"], data["crop"], data["flip"])
    for key in ("crop", "size"):
        if data[key] % multiple:
            raise ConfigError(f"data.{key} ({data[key]}) must be a multiple of {multiple} for this model")
    return dataset


def set_training_modes(task: nn.Module) -> None:
    """Train mode, except for parts with nothing to train (autoencoder, teacher, perceptual net)."""
    task.train()
    for module in task.modules():
        params = list(module.parameters(recurse=True))
        if params and not any(p.requires_grad for p in params):
            module.eval()


def _warmup(steps: int) -> Callable[[int], float]:
    """The LR factor: linear from 1/steps to 1 over the first `steps` steps, then 1."""
    return lambda step: min(1.0, (step + 1) / steps) if steps > 0 else 1.0


def adamw_class(eight_bit: str) -> type[torch.optim.Optimizer]:
    """torch's AdamW, or bitsandbytes' 8-bit AdamW (optimizer state in 8 bits: a quarter of the memory) when
    `eight_bit` is "always", or "auto" and bitsandbytes is installed."""
    if eight_bit not in ("auto", "always", "never"):
        raise ConfigError(f"optim.eight_bit must be auto, always or never, got {eight_bit!r}")
    if eight_bit == "never":
        return torch.optim.AdamW
    try:
        import bitsandbytes
    except ImportError:
        if eight_bit == "always":
            raise ConfigError("optim.eight_bit is 'always' but bitsandbytes is not installed") from None
        return torch.optim.AdamW
    return bitsandbytes.optim.AdamW8bit


def _set_base_lr(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, lr: float) -> None:
    """After a resume, the config's learning rate wins over the checkpoint's (the reference's recipe lowers
    it by hand and goes on); with an unchanged config this reproduces the saved values exactly."""
    scheduler.base_lrs = [lr] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["initial_lr"] = lr
        group["lr"] = lr * factor(scheduler.last_epoch)


def _due(step: int, every: int) -> bool:
    return bool(every) and step % every == 0


def _seed(*values: int) -> int:
    return int(np.random.SeedSequence(list(values)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class Trainer:
    def __init__(self, config: dict[str, Any], resume: str | Path | None = None) -> None:
        self.config = config
        self.out = Path(config["output_dir"])
        train = config["train"]
        self.accelerator = Accelerator(
            mixed_precision="no",  # bf16 autocast is ours (`self.autocast`), so trainers in one process may differ
            log_with="tensorboard",
            project_dir=str(self.out),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        if train["threads"]:
            torch.set_num_threads(train["threads"])
        torch.manual_seed(config["seed"])  # identical initialisation on every process
        pipeline = build_pipeline(config["model"])
        self.dataset = make_dataset(config, pipeline)
        task = make_task(config, pipeline, self.dataset)
        self.step, self.position = 0, 0
        checkpoint = find_checkpoint(resume) if resume else None
        state: TrainingState | None = None
        if checkpoint is not None:
            state = load_checkpoint(checkpoint, task, self.accelerator.process_index)
            self.step, self.position = state.step, state.position
        self.task = self.accelerator.prepare(task)
        self.unwrapped = self.accelerator.unwrap_model(self.task)
        self.groups = self.unwrapped.optimizer_parameters()
        self._make_optimizers(state)
        self.checkpoint = checkpoint
        self.accelerator.print(self.summary())
        data = config["data"]
        self.schedule = ResolutionSchedule(data["size"], **data["schedule"], seed=config["seed"])

    def _make_optimizers(self, state: TrainingState | None) -> None:
        """AdamW + warm-up per phase (the task names them); a resumed state is loaded into them."""
        optim = self.config["optim"]
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        adamw = adamw_class(optim.get("eight_bit", "auto"))
        for name, params in self.groups.items():
            optimizer = adamw(
                params,
                lr=self.unwrapped.learning_rate(name, optim["lr"]),
                betas=tuple(optim["betas"]),
                weight_decay=optim["weight_decay"],
                eps=optim["eps"],
            )
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup(optim["warmup"]))
            if state is not None:
                lr = optimizer.param_groups[0]["initial_lr"]  # the config's, before loading
                try:
                    optimizer.load_state_dict(state.optimizers[name])
                    scheduler.load_state_dict(state.schedulers[name])
                except (KeyError, ValueError) as e:
                    raise ModelError(f"the checkpoint's {name!r} optimizer does not fit this setup: {e}") from None
                _set_base_lr(optimizer, scheduler, lr)
            self.optimizers[name], self.schedulers[name] = optimizer, scheduler

    def summary(self) -> str:
        """One line on what trains and which networks `auto` settings picked."""
        counts = ", ".join(f"{k} {sum(p.numel() for p in v) / 1e6:.2f}M" for k, v in self.groups.items())
        parts = [f"task {self.config['task']}", f"trainable parameters: {counts}", f"{len(self.dataset)} items"]
        for label, network in (
            ("perceptual", getattr(getattr(self.unwrapped, "pixel", None), "network", None)),
            ("semantic teacher", getattr(getattr(self.unwrapped, "semantic", None), "teacher", None)),
        ):
            if network is not None:
                parts.append(f"{label}: {type(network).__name__}")
        if self.checkpoint is not None:
            parts.append(f"resumed at step {self.step} from {self.checkpoint}")
        return "; ".join(parts)

    def autocast(self) -> torch.autocast:
        """bf16 autocast around forwards when train.mixed_precision is bf16 (the reference's use_fp16)."""
        enabled = self.config["train"]["mixed_precision"] == "bf16"
        return torch.autocast(self.accelerator.device.type, dtype=torch.bfloat16, enabled=enabled)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def _batches(self) -> Iterator[torch.Tensor]:
        """Endless batches for this process, from the saved data position on."""
        data, acc, seed = self.config["data"], self.accelerator, self.config["seed"]
        rank, world = acc.process_index, acc.num_processes
        plan = BatchPlan(len(self.dataset), data["batch_size"], seed, self.position, rank, world)
        return iter(make_loader(self.dataset, plan, data["num_workers"], seed))

    def train_step(self, batch: torch.Tensor) -> dict[str, float]:
        step, acc = self.step, self.accelerator
        kind = self.schedule.draw(step, acc.device)
        generator = torch.Generator().manual_seed(_seed(self.config["seed"], step, acc.process_index))
        batch = self.schedule.apply(batch, kind, generator, resizable=not self.config["data"]["latents"])
        logs: dict[str, float] = {}
        clip = self.config["optim"]["grad_clip"]
        for phase in self.unwrapped.phases(step):
            with self.autocast():
                loss, phase_logs = self.task(batch, step, phase)
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(f"step {step}: the {phase} loss is {loss.item()}")
            acc.backward(loss)
            if clip:
                logs[f"grad_norm/{phase}"] = float(acc.clip_grad_norm_(self.groups[phase], clip))
            self.optimizers[phase].step()
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            logs.update(phase_logs)
        for name, scheduler in self.schedulers.items():
            scheduler.step()
            logs[f"lr/{name}"] = scheduler.get_last_lr()[0]
        self.step += 1
        self.position += 1
        return logs

    def save(self) -> Path:
        folder = self.out / "checkpoints" / f"step_{self.step:07d}"
        state = TrainingState(
            step=self.step,
            position=self.position,
            optimizers={k: v.state_dict() for k, v in self.optimizers.items()},
            schedulers={k: v.state_dict() for k, v in self.schedulers.items()},
            config=dump_config(self.config),
        )
        self.accelerator.wait_for_everyone()
        save_checkpoint(folder, self.unwrapped, state, self.main, self.accelerator.process_index)
        self.accelerator.wait_for_everyone()
        if self.main:
            prune_checkpoints(folder.parent, self.config["train"]["keep_checkpoints"])
        return folder

    def validate(self) -> dict[str, float]:
        settings = self.config["validation"]
        with torch.random.fork_rng():  # validation must not shift the training RNG
            return validate(
                self.unwrapped.pipeline, settings["folder"], settings["max_images"], settings["max_side"],
                self.autocast,
            )  # fmt: skip

    def export(self) -> Path:
        folder = self.out / "model"
        if self.main:
            self.unwrapped.pipeline.save_pretrained(folder)
        return folder

    def run(self) -> dict[str, float]:
        """Train to `train.steps`; returns the logs of the last step."""
        train, acc = self.config["train"], self.accelerator
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(dump_config(self.config))
        acc.init_trackers("train")
        batches = self._batches()
        set_training_modes(self.task)
        if self.checkpoint is not None:
            restore_rng(torch.load(self.checkpoint / f"rng_{acc.process_index}.pt", weights_only=True))
        else:
            torch.manual_seed(self.config["seed"] + acc.process_index)
            random.seed(self.config["seed"] + acc.process_index)
        progress = tqdm(
            total=train["steps"], initial=self.step, disable=not (self.main and train["progress"]), desc="train"
        )
        window: dict[str, list[float]] = {}
        logs: dict[str, float] = {}
        latest: dict[str, float] = {}  # stage II logs the generator's loss and bpp only on generator steps
        while self.step < train["steps"]:
            logs = self.train_step(next(batches).to(acc.device))
            latest.update(logs)
            for key, value in logs.items():
                window.setdefault(key, []).append(value)
            progress.update(1)
            progress.set_postfix(loss=f"{latest.get('loss', math.nan):.4f}", bpp=f"{latest.get('bpp', math.nan):.4f}")
            last = self.step == train["steps"]
            if _due(self.step, train["log_every"]) or last:
                acc.log({f"train/{k}": sum(v) / len(v) for k, v in window.items()}, step=self.step)
                window.clear()
            if self.config["validation"]["folder"] and _due(self.step, self.config["validation"]["every"]):
                if self.main:  # the unwrapped model: no DDP communication, so the other ranks need not wait
                    acc.log({f"val/{k}": v for k, v in self.validate().items()}, step=self.step)
                set_training_modes(self.task)
            if _due(self.step, train["checkpoint_every"]) or last:
                with torch.random.fork_rng():
                    self.save()
        progress.close()
        if train["export"]:
            self.export()
        acc.end_training()
        return logs


def train(config: dict[str, Any], resume: str | Path | None = None) -> dict[str, float]:
    return Trainer(config, resume).run()
