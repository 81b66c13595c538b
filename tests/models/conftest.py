"""Run the model tests on one torch thread.

Their tensors are tiny (16x16 grids, a few channels), so a second intra-op thread buys nothing, and on a
2-core machine shared with another process the threads' spin-waits slow the suite down tenfold. The
previous thread count is restored afterwards.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every model test module runs on one torch thread (``one_thread`` in tests/conftest.py)."""
