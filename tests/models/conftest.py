"""Run the model tests on one torch thread.

Their tensors are tiny (16x16 grids, a few channels), so a second intra-op thread buys nothing, and on a
2-core machine shared with another process the threads' spin-waits slow the suite down tenfold. The
previous thread count is restored afterwards.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
