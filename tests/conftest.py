"""Test-wide settings. One torch thread: the suite runs beside other work on a 2-core machine, and tests
that need several threads (determinism across thread counts) start their own processes."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
