"""The per-frequency transfer map: on coefficients where one frequency carries the same quality
signal in both domains and another carries it in the source only, the map ranks them so."""
import json

import numpy as np

from freqalign.method.transfer_map import as_grid, summary, transfer_map


def _coeffs(rng, n, grid, shared, source_only, domain):
    """(n, 8, grid*grid) noise; frequency ``shared`` holds the label in both domains, frequency
    ``source_only`` holds it in the source and noise in the target."""
    y = rng.random(n)
    c = rng.normal(size=(n, 8, grid * grid))
    c[:, :, shared] += 3 * y[:, None]
    if domain == "source":
        c[:, :, source_only] += 3 * y[:, None]
    return c, y


def test_map_finds_the_shared_frequency():
    rng = np.random.default_rng(0)
    grid, shared, source_only = 3, 4, 1
    splits = {"src_train": "source", "src_val": "source", "tgt_train": "target",
              "tgt_val": "target", "tgt_test": "target"}
    coeffs, labels = {}, {}
    for k, dom in splits.items():
        coeffs[k], labels[k] = _coeffs(rng, 120, grid, shared, source_only, dom)
    entries = transfer_map(coeffs, labels, grid, fit_steps=20)
    assert [e["position"] for e in entries] == list(range(grid * grid))
    target = np.array([e["target_srcc"] for e in entries])
    assert int(np.argmax(target)) == shared and target[shared] > 0.8
    assert abs(target[source_only]) < 0.3 and entries[source_only]["source"] > 0.8
    # the source-only frequency is easy to tell apart across domains, the shared one is not
    assert entries[source_only]["domain_accuracy"] > entries[shared]["domain_accuracy"]
    s = summary(entries)
    assert s["best"]["position"] == shared and (entries[shared]["u"], entries[shared]["v"]) in s["above_gap"]
    grid_view = as_grid(entries, "target_srcc", grid)
    assert grid_view[entries[shared]["u"], entries[shared]["v"]] == target[shared]


def test_study_map_writes_its_files(tmp_path):
    from freqalign.run.config import make_config, parse_overrides
    from freqalign.train.study_map import study_map
    from tiny_run import make_tiny_data, tiny_overrides

    cfg = make_config("smoke", overrides=parse_overrides(
        tiny_overrides(make_tiny_data(str(tmp_path))) + ["grid=4"]))
    text = study_map(cfg, str(tmp_path / "map"))
    report = json.loads((tmp_path / "map" / "study_map.json").read_text())
    assert len(report["frequencies"]) == 16 and (tmp_path / "map" / "study_map.png").is_file()
    assert text == (tmp_path / "map" / "study_map.md").read_text()
    assert "Per-frequency transfer map" in text
