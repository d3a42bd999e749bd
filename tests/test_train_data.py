"""Training data: folders, image and latent shards (`onestep pack`), the resumable batch plan and the
per-step resolution schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train_support import write_images

from onestep.autoencoders.space_to_depth import SpaceToDepth
from onestep.cli import main
from onestep.errors import ConfigError
from onestep.train.augment import ResolutionSchedule
from onestep.train.data import (
    BatchPlan,
    TrainingImages,
    TrainingLatents,
    list_images,
    load_rgb,
    make_loader,
    resize_short_side,
    to_tensor,
)
from onestep.train.pack import pack_images
from onestep.train.shards import ShardReader


def test_pack_round_trip(tmp_path):
    source = write_images(tmp_path / "src", 5, size=(96, 80))
    assert main(["pack", str(source), "-o", str(tmp_path / "packed"), "--size", "64", "--quality", "95"]) == 0
    reader = ShardReader(tmp_path / "packed")
    paths = list_images(source)
    assert reader.kind == "image" and len(reader) == len(paths) == 5
    for i, path in enumerate(paths):
        expected = to_tensor(resize_short_side(load_rgb(path), 64))
        got = to_tensor(reader.image(i))
        assert got.shape == expected.shape and min(got.shape[1:]) == 64
        mse = ((got - expected) / 2).square().mean().item()
        assert -10 * np.log10(mse) > 30, f"{path.name}: lossy shard image too far from the source"
    assert reader.records[0].name.startswith("src/")
    with pytest.raises(ConfigError, match="already holds shards"):
        pack_images([source], tmp_path / "packed")


def test_dataset_reads_folders_and_shards(tmp_path):
    source = write_images(tmp_path / "src", 4, size=(70, 90))  # image 0 is greyscale, sides not multiples
    pack_images([source], tmp_path / "packed", size=64)
    dataset = TrainingImages([source, tmp_path / "packed"], crop=64)
    assert len(dataset) == 8
    items = [dataset[(i, 7)] for i in range(len(dataset))]
    assert all(x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1 for x in items)
    assert torch.equal(dataset[(3, 11)], dataset[(3, 11)]), "an item must depend only on (index, seed)"
    assert not torch.equal(dataset[(3, 11)], dataset[(3, 12)]), "the seed must drive crop and flip"


def test_latent_shards(tmp_path):
    source = write_images(tmp_path / "src", 3, size=(80, 72))
    folder = SpaceToDepth(8).save_pretrained(tmp_path / "ae")
    assert main(["pack", str(source), "-o", str(tmp_path / "lat"), "--size", "64", "--autoencoder", str(folder)]) == 0
    reader = ShardReader(tmp_path / "lat")
    assert reader.kind == "latent" and reader.meta["downsampling"] == 8
    image = to_tensor(resize_short_side(load_rgb(list_images(source)[1]), 64))
    h, w = image.shape[1] // 8 * 8, image.shape[2] // 8 * 8
    top, left = (image.shape[1] - h) // 2, (image.shape[2] - w) // 2
    expected = SpaceToDepth(8).encode(image[None, :, top : top + h, left : left + w])[0]
    assert torch.allclose(reader.latent(1), expected, atol=1e-3)  # float16 storage
    dataset = TrainingLatents([tmp_path / "lat"], crop=8)
    assert dataset[(0, 1)].shape == (192, 8, 8)
    with pytest.raises(ConfigError, match="latent"):
        TrainingImages([tmp_path / "lat"], crop=8)


def test_batch_plan_resumes_exactly():
    full = BatchPlan(10, 3, seed=5)  # 3 batches per epoch, one item dropped each epoch
    iterator = iter(full)
    batches = [next(iterator) for _ in range(8)]
    for start in (0, 2, 3, 7):
        resumed = iter(BatchPlan(10, 3, seed=5, start=start))
        assert [next(resumed) for _ in range(8 - start)] == batches[start:]
    epoch = [i for batch in batches[:3] for i, _ in batch]
    assert len(set(epoch)) == 9, "no item twice within an epoch"
    assert [i for i, _ in batches[3]] != [i for i, _ in batches[0]], "each epoch is reshuffled"
    ranks = [next(iter(BatchPlan(10, 2, seed=5, rank=r, world=2))) for r in range(2)]
    assert not {i for i, _ in ranks[0]} & {i for i, _ in ranks[1]}, "processes share no item"
    with pytest.raises(ConfigError):
        BatchPlan(3, 4, seed=0)


def test_loader_workers_do_not_change_batches(tmp_path):
    dataset = TrainingImages([write_images(tmp_path / "src", 6, size=(72, 64))], crop=48)
    batches = [
        [b.clone() for _, b in zip(range(4), make_loader(dataset, BatchPlan(len(dataset), 2, seed=1), workers))]
        for workers in (0, 2)
    ]
    assert all(torch.equal(a, b) for a, b in zip(*batches))


def test_resolution_schedule():
    schedule = ResolutionSchedule(size=32, resize=0.2, crop=0.5, full=0.3, full_batch_divisor=4)
    kinds = [schedule.draw(step) for step in range(2000)]
    assert kinds == [schedule.draw(step) for step in range(2000)], "draws depend on (seed, step) only"
    for kind, p in (("resize", 0.2), ("crop", 0.5), ("full", 0.3)):
        assert abs(kinds.count(kind) / 2000 - p) < 0.04
    batch = torch.rand(8, 3, 64, 64) * 2 - 1
    generator = torch.Generator().manual_seed(0)
    assert schedule.apply(batch, "resize", generator).shape == (8, 3, 32, 32)
    assert schedule.apply(batch, "crop", generator).shape == (8, 3, 32, 32)
    assert schedule.apply(batch, "full", generator).shape == (2, 3, 64, 64)
    with pytest.raises(ConfigError):
        schedule.apply(batch, "resize", generator, resizable=False)


def test_packed_training_set_fits_in_50_mb(tmp_path, shared):
    """Pack every 50th image (stratified over the three sub-sets) and extrapolate to the whole set."""
    every = list_images(shared("data/train"))
    subset = tmp_path / "subset"
    subset.mkdir()
    for path in every[::50]:
        (subset / f"{path.parent.name}_{path.name}").symlink_to(path.resolve())
    writer = pack_images([subset], tmp_path / "packed", size=256)
    estimate = writer.total_bytes() / len(writer.records) * len(every)
    assert len(every) == 1600
    assert estimate < 50e6, f"the packed training set would take about {estimate / 1e6:.1f} MB"
