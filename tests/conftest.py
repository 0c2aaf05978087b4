import os
import sys
from pathlib import Path

import pytest
import torch

# the tests' shared helpers (zoo.py, thirdparty_models.py) import as plain modules
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def device():
    """The device of the tests that take one: the CPU, or ``$CNNINV_TEST_DEVICE`` (e.g.
    ``cuda``, as ``benchmarks/gpu_check.sh`` sets it); asking for a device that is not there
    is an error, not a silent fall-back to the CPU."""
    name = os.environ.get("CNNINV_TEST_DEVICE", "cpu").strip() or "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"CNNINV_TEST_DEVICE={name!r} but CUDA is not available here")
    return dev


@pytest.fixture
def gen():
    g = torch.Generator()
    g.manual_seed(1234)
    return g
