import pytest
import torch


@pytest.fixture
def device():
    """Tests run on the CPU; the code takes any device."""
    return torch.device("cpu")


@pytest.fixture
def gen():
    g = torch.Generator()
    g.manual_seed(1234)
    return g
