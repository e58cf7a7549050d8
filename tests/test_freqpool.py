"""FreqPool: a drop-in for global average pooling, windows, compile and torchvision models."""
import pytest
import torch
import torchvision
from torch import nn

from freqalign import FreqPool, freq_pool, grid_to_index, window


def gap(x):
    return nn.AdaptiveAvgPool2d(1)(x).flatten(1)


@pytest.mark.parametrize("size", [(1, 1), (7, 7), (13, 9), (56, 56)])
def test_default_freqpool_equals_gap(backend_name, size):
    """Relative error <= 1e-6 of the summands' scale: exactly relative for post-ReLU features,
    and still fp32 rounding where signed values cancel in the mean."""
    for x in (torch.rand(4, 12, *size) * 5, torch.randn(4, 12, *size) * 3 + 1):
        scale = x.abs().mean((2, 3))
        assert ((FreqPool()(x) - gap(x)).abs() / scale).max() <= 1e-6


def test_set_window_pools_at_mapped_frequencies(backend_name):
    pool = FreqPool(norm="ortho").set_window(3, 4)
    x = torch.randn(2, 8, 14, 14, dtype=torch.float64)
    expected = freq_pool(x, grid_to_index(window(3, 4), 14, 14), grouped=True)
    torch.testing.assert_close(pool(x), expected)
    assert "window=(position=3, size=4)" in repr(pool) and "grid=7" in repr(pool)


def test_freqpool_keeps_no_state():
    pool = FreqPool().set_window(0, 4)
    assert pool.state_dict() == {} and list(pool.parameters()) == []


def test_resnet18_with_freqpool_gives_the_same_logits(backend_name):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = model(images)
        model.avgpool = nn.Sequential(FreqPool(), nn.Unflatten(1, (-1, 1, 1)))
        got = model(images)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


class _SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = FreqPool(norm="ortho").set_window(2, 4)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.pool(torch.relu(self.conv(x))))


def test_torch_compile_fullgraph_matches_eager(backend_name):
    torch.manual_seed(0)
    net = _SmallNet()
    x = torch.randn(3, 3, 14, 14, requires_grad=True)
    eager = net(x)
    eager.sum().backward()
    eager_grad = x.grad.clone()
    x.grad = None
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad, eager_grad, rtol=1e-5, atol=1e-6)
