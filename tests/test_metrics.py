import math

import pytest
import torch

from cnninv.metrics import per_sample_norm, relative_error, rescale_to


def test_per_sample_norm_over_every_non_batch_axis(device):
    g = torch.Generator().manual_seed(0)
    t = torch.randn(4, 3, 5, 6, generator=g, dtype=torch.float64).to(device)
    expected = t.flatten(1).norm(dim=1)
    torch.testing.assert_close(per_sample_norm(t), expected)
    cl = t.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(per_sample_norm(cl), expected)
    torch.testing.assert_close(per_sample_norm(t[:, 0, 0]), t[:, 0, 0].norm(dim=1))
    torch.testing.assert_close(per_sample_norm(t[:, 0, 0, 0]), t[:, 0, 0, 0].abs())


def test_relative_error(device):
    target = torch.tensor([[3.0, 4.0], [1.0, 0.0]], device=device)
    estimate = torch.tensor([[3.0, 4.0], [1.0, 1.0]], device=device)
    torch.testing.assert_close(
        relative_error(estimate, target), torch.tensor([0.0, 1.0]).to(device)
    )
    target[1] = 0  # used to be NaN
    with pytest.raises(ValueError, match="target has an all-zero sample"):
        relative_error(estimate, target)
    with pytest.raises(ValueError, match="differ in shape"):
        relative_error(estimate[:, :1], estimate)
    with pytest.raises(ValueError, match="not finite"):
        relative_error(torch.full((1, 2), math.nan), torch.ones(1, 2))


def test_rescale_to(device):
    g = torch.Generator().manual_seed(1)
    est = torch.randn(5, 2, 7, generator=g, dtype=torch.float64).to(device)
    target = 3 * torch.randn(5, 2, 7, generator=g, dtype=torch.float64).to(device)
    out = rescale_to(est, target)
    torch.testing.assert_close(per_sample_norm(out), per_sample_norm(target))
    torch.testing.assert_close(out / per_sample_norm(out).view(-1, 1, 1),
                               est / per_sample_norm(est).view(-1, 1, 1))  # fmt: skip
    est[2] = 0
    assert bool((rescale_to(est, target)[2] == 0).all())  # zero stays zero
    with pytest.raises(ValueError, match="estimate must be a floating-point batch"):
        rescale_to(torch.ones(3, 2, dtype=torch.long), target)
