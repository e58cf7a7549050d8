"""The method's parts: gradient reversal and its schedule, window movement and jitter, and
each selection criterion on a constructed case with a known answer."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from freqalign import FreqPool, window
from freqalign.method.criteria import (balanced_accuracy, confusion_score, density_ratio,
                                       dev_risk, fit_domain_classifier, score_all, srcc)
from freqalign.method.model import FreqAlignNet, build_model, dann_lambda, grad_reverse
from freqalign.method.small_cnn import SmallCNN
from freqalign.method.search import (SearchState, all_frequencies, jitter, probe_scores,
                                     window_features)
from freqalign.run.config import make_config
from freqalign.train.plan import Plan


# -- gradient reversal ---------------------------------------------------------------------
def test_grad_reverse_is_identity_forward_and_negated_scaled_backward():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 3, dtype=torch.float64)
    y = grad_reverse(x, 0.37)
    assert torch.equal(y, x)
    y.backward(g)
    torch.testing.assert_close(x.grad, -0.37 * g)


def test_dann_schedule_values():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0, alpha=2.0) == pytest.approx(2.0 * (2 / (1 + math.exp(-10)) - 1))
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    values = [dann_lambda(p / 10) for p in range(11)]
    assert all(a < b for a, b in zip(values, values[1:]))  # increasing
    assert dann_lambda(-1.0) == 0.0 and dann_lambda(3.0) == dann_lambda(1.0)  # clipped


def test_discriminator_gradient_is_reversed_through_the_backbone():
    """The backbone gets exactly ``-lam`` times the discriminator's plain gradient.

    The plain gradient is computed on the same graph without the reversal layer. Backward is
    linear and ``lam = 0.5`` is a power of two, so scaling commutes with every rounding:
    the two gradients must agree bit for bit, in sign and in scale.
    """
    torch.manual_seed(0)
    net = FreqAlignNet(SmallCNN(16, 2), 8, 16, dropout=0.0)
    net.set_window(3, 4)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    weight = net.backbone.body[0].weight
    (plain,) = torch.autograd.grad(net.discriminator(net.pool(net.backbone(x))).sum(), weight)
    _, logit, _ = net(x, 0.5)
    (reversed_,) = torch.autograd.grad(logit.sum(), weight)
    assert plain.abs().sum() > 0
    assert torch.equal(reversed_, -0.5 * plain)


def test_set_window_none_is_gap_and_position_follows_zigzag():
    net = FreqAlignNet(SmallCNN(16, 2), 8, 16)
    f = torch.randn(2, 16, 8, 8)
    net.set_window(None, 4)
    torch.testing.assert_close(net.pool(f), f.mean((2, 3)))
    net.set_window(5, 4)
    assert net.pool.freqs == window(5, 4, 7)


def test_window_dc_shows_the_discriminator_gap_beside_the_window():
    """With ``window_dc`` the discriminator's input is [GAP, window pooling] (2C): checked by
    feeding the same first layer the two halves by hand, at a window and at GAP."""
    torch.manual_seed(0)
    net = FreqAlignNet(SmallCNN(16, 2), 8, 16, dropout=0.0, window_dc=True).eval()
    assert net.discriminator[0].in_features == 32
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    f = net.backbone(x)
    for position in (None, 5):
        net.set_window(position, 4)
        _, logit, gap = net(x)
        torch.testing.assert_close(gap, f.mean((2, 3)))
        seen = torch.cat([f.mean((2, 3)), FreqPool(grid=7).set_window(position, 4)(f)
                          if position is not None else f.mean((2, 3))], 1)
        torch.testing.assert_close(logit, net.discriminator(seen).squeeze(1))
    model = build_model(make_config("smoke", overrides={"window_dc": True}))
    assert model.discriminator[0].in_features == 2 * model.backbone.out_channels


# -- window movement and jitter --------------------------------------------------------------
def test_search_positions_from_config():
    cfg = make_config("demo", overrides={"window_size": 4, "search_stride": 4})
    assert Plan(cfg).positions == list(range(0, 46, 4))
    cfg = make_config("demo", overrides={"search_start": 3, "search_end": 10, "search_stride": 3})
    assert Plan(cfg).positions == [3, 6, 9]


def test_jitter_stays_in_range_and_covers_all_offsets():
    g = torch.Generator().manual_seed(0)
    seen = {jitter(10, 2, 45, g) for _ in range(300)}
    assert seen == {8, 9, 10, 11, 12}
    edge = {jitter(0, 3, 45, g) for _ in range(300)}
    assert edge == {0, 1, 2, 3}  # clipped at 0
    top = {jitter(45, 1, 45, g) for _ in range(100)}
    assert top == {44, 45}
    assert jitter(7, 0, 45, g) == 7


def test_search_state_keeps_best_and_breaks_ties_low():
    s = SearchState([0, 4, 8], window_size=4, grid=7)
    assert s.record(0, "dev", {"dev": -0.2}, 0.1, 10)
    assert s.record(4, "dev", {"dev": -0.1}, 0.2, 20)
    assert not s.record(8, "dev", {"dev": -0.1}, 0.3, 30)
    assert s.selected() == 4
    assert s.best()["freqs"] == [list(f) for f in window(4, 4, 7)]
    t = SearchState([], 1, 7)
    t.load_state_dict(s.state_dict())
    assert t.entries == s.entries and t.selected() == 4


def test_window_features_equal_grouped_freqpool():
    torch.manual_seed(0)
    f = torch.randn(3, 16, 8, 8, dtype=torch.float64)
    coeffs = all_frequencies(f, 7).numpy()  # one ungrouped pass over all 49 frequencies
    assert coeffs.shape == (3, 16, 49)
    for p in (0, 7, 45):
        pool = FreqPool(grid=7).set_window(p, 4)
        np.testing.assert_allclose(window_features(coeffs, p, 4), pool(f).numpy(), atol=1e-12)


def test_probe_prefers_the_frequency_with_shared_quality_information():
    rng = np.random.default_rng(0)

    def split(n, domain):
        q = rng.random(n)
        c = rng.normal(size=(n, 4, 49))
        c[:, :, 10] += 3 * q[:, None]  # quality signal, the same in both domains
        c[:, :, 3] += 3.0 * (domain == "t")  # domain shift without quality information
        return c, q

    coeffs, labels = {}, {}
    for name in ("src_train", "src_val", "tgt_train", "tgt_val", "tgt_test"):
        coeffs[name], labels[name] = split(200, name[0])
    out = probe_scores(coeffs, labels, list(range(49)), size=1, fit_steps=30)
    scores = [o["probe"] for o in out]
    assert int(np.argmax(scores)) == 10
    assert out[3]["domain_accuracy"] > 0.9 and abs(out[10]["domain_accuracy"] - 0.5) < 0.15
    assert out[10]["target_test_srcc"] > 0.8


# -- criteria ------------------------------------------------------------------------------
def test_dev_risk_matches_hand_computation():
    losses = np.array([0.1, 0.4, 0.2, 0.8])
    w = np.array([0.5, 1.5, 1.0, 3.0])
    assert dev_risk(losses, w) == pytest.approx((w / w.mean() * losses).mean())
    assert dev_risk(losses, np.ones(4)) == pytest.approx(losses.mean())  # no shift: plain mean


def test_dev_risk_stays_within_the_losses_range():
    # a nearly perfect domain classifier: density ratios from 1e-6 to 1e6 (the old, raw-weight
    # estimate gave risks of +32 and -63 for losses in [0, 1])
    rng = np.random.default_rng(3)
    for _ in range(20):
        losses = rng.uniform(0, 1, 300)
        w = density_ratio(rng.choice([1e-7, 0.5, 1 - 1e-7], 300))
        assert losses.min() <= dev_risk(losses, w) <= losses.max()


def test_dev_with_known_importance_weights_estimates_the_target_risk():
    # source x ~ N(0, 1), target x ~ N(1, 1): w(x) = exp(x - 1/2); loss x^2 has target risk 2
    rng = np.random.default_rng(0)
    estimates, plain = [], []
    for _ in range(50):
        x = rng.normal(size=2000)
        w, loss = np.exp(x - 0.5), x ** 2
        estimates.append(dev_risk(loss, w))
        plain.append((w * loss).mean())
    assert np.mean(estimates) == pytest.approx(2.0, abs=0.05)
    assert np.std(estimates) < np.std(plain)  # self-normalising reduces the variance


def test_domain_classifier_recovers_the_density_ratio():
    rng = np.random.default_rng(1)
    xs, xt = rng.normal(size=(4000, 1)), rng.normal(1.0, 1.0, size=(4000, 1))
    proba = fit_domain_classifier(np.r_[xs, xt], np.r_[np.zeros(4000), np.ones(4000)], steps=50, l2=0.0)
    grid = np.array([[-1.0], [0.0], [1.0]])
    np.testing.assert_allclose(density_ratio(proba(grid)), np.exp(grid[:, 0] - 0.5), rtol=0.15)


def test_confusion_and_accuracy():
    assert confusion_score(0.5) == 0.0 and confusion_score(1.0) == -0.5
    assert confusion_score(0.3) == pytest.approx(-0.2)
    assert balanced_accuracy(np.array([0.1, 0.2]), np.array([0.9, 0.4])) == 0.75


def test_srcc_matches_scipy_and_is_zero_for_constant():
    rng = np.random.default_rng(2)
    a, b = rng.random(50), rng.random(50)
    assert srcc(a, b) == pytest.approx(stats.spearmanr(a, b)[0])
    assert srcc(np.ones(5), b[:5]) == 0.0


def test_score_all_on_constructed_domains():
    rng = np.random.default_rng(3)
    n = 400
    true = rng.random(n)
    pred = true + rng.normal(0, 0.05, n)
    same = dict(src_train_feat=rng.normal(size=(n, 3)), tgt_train_feat=rng.normal(size=(n, 3)),
                src_val_feat=rng.normal(size=(n, 3)), tgt_val_feat=rng.normal(size=(n, 3)),
                src_val_pred=pred, src_val_true=true, tgt_val_pred=-true, tgt_val_true=true)
    s = score_all(same, fit_steps=30)
    assert s["source"] == pytest.approx(stats.spearmanr(pred, true)[0])
    assert s["oracle"] == pytest.approx(-1.0)
    assert abs(s["domain_accuracy"] - 0.5) < 0.07 and s["confusion"] > -0.07
    assert -s["dev"] == pytest.approx(np.abs(pred - true).mean(), rel=0.15)  # weights ~ 1
    shifted = dict(same, tgt_train_feat=same["tgt_train_feat"] + 4, tgt_val_feat=same["tgt_val_feat"] + 4)
    t = score_all(shifted, fit_steps=30)
    assert t["domain_accuracy"] > 0.95 and t["confusion"] < -0.45
