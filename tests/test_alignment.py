"""The fair test of issue 23: the alignment measure, the target image sets, per-seed splits,
the bootstrap over content groups, the discriminator warm-up and BatchNorm for every method."""
import json

import numpy as np
import pytest
import torch
from scipy import stats

from freqalign.basis import zigzag
from freqalign.method.alignment import alignment, domain_accuracy
from freqalign.method.search import all_frequencies
from freqalign.run.config import make_config, parse_overrides
from freqalign.train.loop import train
from freqalign.train.paired import bootstrap_difference
from freqalign.train.plan import Batches, Plan, Pooling
from freqalign.train.step import losses

from tiny_run import make_tiny_data, tiny_overrides


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_overrides(make_tiny_data(str(tmp_path_factory.mktemp("tiny"))))


def tiny_config(tiny, **extra):
    return make_config("smoke", overrides={**parse_overrides(tiny), **extra})


# -- the alignment measure ------------------------------------------------------------------
def test_domain_accuracy_is_chance_for_one_distribution_and_high_for_two():
    rng = np.random.default_rng(0)
    same = domain_accuracy(rng.normal(size=(200, 20)), rng.normal(size=(240, 20)))
    shifted = domain_accuracy(rng.normal(size=(200, 20)), rng.normal(size=(240, 20)) + 1.0)
    # 440 held-out predictions: the binomial sd of a chance accuracy is about 0.024
    assert abs(same - 0.5) < 0.1 and shifted > 0.95


def test_domain_accuracy_is_cross_validated_not_fit_on_what_it_scores():
    # 200 dimensions, 60 rows: a classifier scored on its own training rows separates any
    # labels; held out, unrelated features stay near chance
    rng = np.random.default_rng(1)
    assert domain_accuracy(rng.normal(size=(30, 200)), rng.normal(size=(30, 200))) < 0.75


def test_group_folds_do_not_reward_recognising_the_content():
    """Both domains draw their content clusters from one distribution, so the domains are
    aligned; but no cluster is shared. Folds of single images let the classifier recognise the
    clusters it was fit on (high accuracy); folds of whole clusters read chance."""
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(60, 40)) * 2
    groups = np.repeat(np.arange(60), 8)
    x = centres[groups] + rng.normal(size=(len(groups), 40))
    source, target = groups < 30, groups >= 30
    rows = domain_accuracy(x[source], x[target])
    clusters = domain_accuracy(x[source], x[target], groups[source], groups[target])
    # 60 clusters: a group-fold accuracy has a chance-level sd of about 0.07
    assert rows > 0.7 and clusters < 0.62 and rows - clusters > 0.15


def test_alignment_sees_a_shift_only_in_the_band_that_carries_it():
    """Target maps differ from source maps only at one grid frequency, the one at zigzag
    position 10: the band of window size 1 there separates the domains, GAP and position 3 do
    not."""
    rng = np.random.default_rng(2)
    n, c = 150, 8
    u, v = zigzag(7)[10]
    f_s = torch.from_numpy(rng.normal(size=(n, c, 7, 7)))
    f_t = torch.from_numpy(rng.normal(size=(n, c, 7, 7)))
    k = torch.arange(7.0, dtype=torch.float64)
    f_t = f_t + 0.5 * torch.outer(torch.cos(torch.pi * (2 * k + 1) * u / 14),
                                  torch.cos(torch.pi * (2 * k + 1) * v / 14))
    held = {}
    for name, f in (("source", f_s), ("target", f_t)):
        held[name] = {"feat": f.mean((2, 3)).numpy(), "coeffs": all_frequencies(f, 7).numpy(),
                      "groups": np.arange(n) // 10}
    out = alignment(held["source"], held["target"], [3, 10], size=1)
    # the shift is about 1.8 noise sd per channel in that coefficient, over 8 channels
    assert out["bands"]["10"] > 0.9
    assert abs(out["gap"] - 0.5) < 0.12 and abs(out["bands"]["3"] - 0.5) < 0.12


# -- the bootstrap over content groups -------------------------------------------------------
def test_bootstrap_interval_covers_the_difference_and_orders_a_clear_one():
    rng = np.random.default_rng(3)
    true = [rng.uniform(size=120) for _ in range(4)]
    groups = [np.repeat(np.arange(12), 10) for _ in range(4)]
    good = [t + rng.normal(0, 0.05, 120) for t in true]
    poor = [t + rng.normal(0, 0.5, 120) for t in true]
    diff = np.mean([stats.spearmanr(g, t)[0] - stats.spearmanr(p, t)[0]
                    for g, p, t in zip(good, poor, true)])
    b = bootstrap_difference(good, poor, true, groups, reps=300)
    assert b["low"] <= diff <= b["high"] and b["excludes_zero"] and b["groups"] == 12
    same = bootstrap_difference(good, good, true, groups, reps=50)
    assert same["low"] == same["high"] == 0.0 and not same["excludes_zero"]
    assert bootstrap_difference(good, poor, true, groups, reps=300) == b  # seeded


# -- schedules and BatchNorm -----------------------------------------------------------------
def test_disc_warmup_holds_lambda_at_zero_then_follows_the_schedule():
    cfg = make_config("smoke", overrides={"method": "dann", "disc_warmup_steps": 4})
    plan, w = Plan(cfg), cfg.warmup_steps
    assert [plan.dann_lambda(w + t) for t in range(5)] == [0.0] * 5
    assert 0 < plan.dann_lambda(w + 5) < plan.dann_lambda(w + 20) <= cfg.alpha
    plain = Plan(make_config("smoke", overrides={"method": "dann"}))
    assert plain.dann_lambda(w + 1) > 0


def test_source_only_passes_target_batches_without_a_loss_on_them():
    plan = Plan(make_config("smoke", overrides={"method": "source-only"}))
    assert [(s.batches, s.pooling) for s in plan.stages] == [
        (Batches.SOURCE_LABELS, Pooling.NONE), (Batches.BOTH, Pooling.NONE)]
    cfg = make_config("smoke")
    torch.manual_seed(0)
    net = torch.nn.Module()
    net.forward = lambda x, lam: (x.mean(1), None, None)
    x, y = torch.rand(6, 3), torch.rand(4)
    out = losses(net, x, y, 4, False, cfg, 0.0)
    assert out.domain is None
    assert out.quality == pytest.approx(float((x[:4].mean(1) - y).abs().mean()), abs=1e-7)


# -- runs: splits per seed, every target set, the alignment in results.json ------------------
def test_split_by_seed_rotates_the_split_and_results_carry_every_target_set(tiny, tmp_path):
    from freqalign.data.domains import load_data

    def test_groups(seed, by_seed):
        data, _ = load_data(tiny_config(tiny, seed=seed, split_by_seed=by_seed))
        return set(data["tgt_test"].groups.tolist())

    assert test_groups(0, False) == test_groups(5, False)
    assert any(test_groups(0, True) != test_groups(s, True) for s in (1, 2, 3))

    cfg = tiny_config(tiny, split_by_seed=True, seed=1)
    results = train(cfg, str(tmp_path))
    saved = json.loads((tmp_path / "results.json").read_text())
    sizes = saved["sizes"]
    assert set(saved["alignment"]["bands"]) == {str(p) for p in Plan(cfg).positions}
    accuracies = [saved["alignment"]["gap"], *saved["alignment"]["bands"].values()]
    assert all(0 <= a <= 1 for a in accuracies)
    assert saved["alignment"]["folds"] == "content groups"
    assert saved["alignment"]["images"] == {"source": sizes["src_val"],
                                            "target": sizes["tgt_val"] + sizes["tgt_test"]}
    pred = np.load(tmp_path / "target_predictions.npz")
    n_all = sizes["tgt_train"] + sizes["tgt_val"] + sizes["tgt_test"]
    assert len(pred["all_pred"]) == len(pred["all_groups"]) == n_all
    test = pred["all_split"] == 2
    np.testing.assert_array_equal(pred["all_pred"][test], pred["pred"])
    for key, rows in (("target_all", slice(None)), ("target_heldout", pred["all_split"] >= 1)):
        expected = stats.spearmanr(pred["all_pred"][rows], pred["all_true"][rows])[0]
        assert saved[key]["srcc"] == pytest.approx(expected, abs=1e-12), key
    assert results["target_all"] == saved["target_all"] and not saved["target_all_reads_labels"]
