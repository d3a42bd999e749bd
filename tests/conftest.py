"""Test-wide settings and fixtures. One torch thread: the suite runs beside other work on a 2-core machine,
and tests that need several threads (determinism across thread counts) start their own processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)

# The property tests draw the same examples on every run and every machine, so a CI verdict can be
# reproduced; `pytest --hypothesis-profile=explore` searches with fresh random examples.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("repeatable")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"  # the read-only data beside the repository


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Every test starts on one torch thread and leaves the count as it found it (trainers may change it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared() -> Callable[..., Path]:
    """`shared("weights/taef2", ...)`: paths under ../shared; the test is skipped, saying which, if one is absent."""

    def paths(*relative: str) -> Path:
        found = [SHARED / r for r in relative]
        missing = [str(p) for p in found if not p.exists()]
        if missing:
            pytest.skip(f"shared data not found: {', '.join(missing)}")
        return found[0]

    return paths
