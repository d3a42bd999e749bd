"""The library API takes the image types people have (uint8 tensors, numpy arrays, PIL images), refuses float
input whose range is not stated, gives back the form it was given (grey in, grey out, exactly grey), and codes
from several Python threads at once with the same streams as one thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import tiny_pipeline

from onestep import api
from onestep.errors import ConfigError, ImageError

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def model():
    return tiny_pipeline(0)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return RNG.integers(0, 256, (19, 27, 3), dtype=np.uint8)


def test_numpy_pil_and_tensor_make_the_same_stream(model, rgb) -> None:
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    data = api.compress(model, tensor)
    assert api.compress(model, rgb) == data
    assert api.compress(model, Image.fromarray(rgb)) == data
    for given, expected_type, shape in [
        (tensor, torch.Tensor, (3, 19, 27)),
        (rgb, np.ndarray, (19, 27, 3)),
        (Image.fromarray(rgb), Image.Image, None),
    ]:
        _, picture = api.compress_and_reconstruct(model, given)
        assert isinstance(picture, expected_type)
        if shape is not None:
            assert tuple(picture.shape) == shape
        else:
            assert picture.mode == "RGB" and picture.size == (27, 19)


def test_float_input_needs_its_range(model, rgb) -> None:
    as_float = torch.from_numpy(rgb).permute(2, 0, 1).float()
    with pytest.raises(ImageError, match="say what range its values are in"):
        api.compress(model, as_float)
    data = api.compress(model, torch.from_numpy(rgb).permute(2, 0, 1).contiguous())
    assert api.compress(model, as_float, value_range=(0, 255)) == data
    assert api.compress(model, as_float / 255, value_range=(0, 1)) == data
    assert api.compress(model, as_float / 127.5 - 1, value_range=(-1, 1)) == data
    with pytest.raises(ImageError, match="outside value_range"):
        api.compress(model, as_float, value_range=(0, 1))  # [0, 255] values said to be in [0, 1]
    with pytest.raises(ImageError, match="not finite"):
        api.compress(model, torch.full((3, 4, 4), float("nan")), value_range=(0, 1))
    with pytest.raises(ConfigError, match="value_range must be one of"):
        api.compress(model, as_float, value_range=(0, 2))


def test_refusals_of_shapes_and_types(model) -> None:
    with pytest.raises(ImageError, match="1 or 3 channels"):
        api.compress(model, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="int16"):
        api.compress(model, torch.zeros(3, 4, 4, dtype=torch.int16))
    with pytest.raises(ImageError, match="cannot take an image of type list"):
        api.compress(model, [[1, 2], [3, 4]])


def test_grey_in_grey_out(model) -> None:
    grey = RNG.integers(0, 256, (21, 17), dtype=np.uint8)
    data, picture = api.compress_and_reconstruct(model, grey)
    assert api.describe(data)["grey"] and picture.shape == (21, 17) and picture.dtype == np.uint8
    decoded = api.decompress(model, data)
    assert decoded.shape == (1, 21, 17)  # one channel: exactly grey
    assert np.array_equal(decoded[0].numpy(), picture)
    _, from_pil = api.compress_and_reconstruct(model, Image.fromarray(grey))
    assert from_pil.mode == "L" and np.array_equal(np.asarray(from_pil), picture)
    assert api.compress(model, torch.from_numpy(grey)[None]) == data


def test_threads_code_the_same_streams_as_one_thread(model) -> None:
    images = [torch.from_numpy(RNG.integers(0, 256, (3, 40, 56), dtype=np.uint8)) for _ in range(6)]
    alone = [api.compress(model, image) for image in images]
    decoded_alone = [api.decompress(model, data) for data in alone]
    threads_before = torch.get_num_threads()
    results: dict[int, tuple[bytes, torch.Tensor]] = {}

    def work(i: int) -> None:
        data = api.compress(model, images[i])
        results[i] = (data, api.decompress(model, data))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [results[i][0] for i in range(len(images))] == alone
    assert all(torch.equal(results[i][1], decoded_alone[i]) for i in range(len(images)))
    assert torch.get_num_threads() == threads_before  # the caller's setting is back


def test_rate_control_refusals(model) -> None:
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ImageError, match="has no rate control"):
        api.compress(model, image, quality=3)
    with pytest.raises(ConfigError, match="no rate control"):
        api.compress_to_size(model, image, 1000)
