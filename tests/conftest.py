"""Shared test set-up: every test starts from the same random state, so failures reproduce."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (legacy global state, for code that still uses it)
    yield
