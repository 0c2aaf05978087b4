import sys
from pathlib import Path

import pytest
import torch

# the tests' shared helpers (zoo.py, thirdparty_models.py) import as plain modules
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def device():
    """Tests run on the CPU; the code takes any device."""
    return torch.device("cpu")


@pytest.fixture
def gen():
    g = torch.Generator()
    g.manual_seed(1234)
    return g
