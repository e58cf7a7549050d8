"""Issue 25's renames: old import paths, functions, config values, results.json fields,
metrics.jsonl records, checkpoint keys and stage names still work, with a deprecation warning;
the names of the vocabulary read and print as their values."""
import importlib
import json
import sys

import pytest

from freqalign import metrics
from freqalign.method.criteria import CRITERIA, LABEL_FREE, Criterion
from freqalign.run.config import apply, make_config
from freqalign.run.renamed import CHECKPOINT_KEYS, renamed_keys, renamed_stages
from freqalign.run.vocabulary import Method
from freqalign.train.evaluate import finished
from freqalign.train.plan import Plan
from freqalign.train.runlog import read_records


@pytest.mark.parametrize("old, new, name", [
    ("freqalign.train.config", "freqalign.run.config", "make_config"),
    ("freqalign.train.checkpoint", "freqalign.run.checkpoint", "load"),
    ("freqalign.data.scoring", "freqalign.data.file_scores", "score_images"),
])
def test_old_module_paths_warn_and_give_the_same_objects(old, new, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_old_function_names_warn_and_agree():
    pred, true = [0.1, 0.5, 0.3, 0.9], [0.2, 0.4, 0.3, 1.0]
    with pytest.warns(DeprecationWarning, match="all_metrics"):
        assert metrics.evaluate(pred, true) == metrics.all_metrics(pred, true)


def test_names_equal_print_and_serialise_as_their_values():
    assert Method.TARGET_ORACLE == "target-oracle" and f"{Method.DANN}" == "dann"
    assert json.dumps({Method.DANN: [Criterion.DEV]}) == '{"dann": ["dev"]}'
    assert Criterion.ORACLE in CRITERIA and Criterion.ORACLE not in LABEL_FREE
    cfg = apply(make_config("smoke"), {"method": Method.DANN, "criterion": Criterion.SOURCE}, "t")
    assert type(cfg.method) is str and type(cfg.criterion) is str  # plain data in checkpoints
    assert cfg.to_dict() == make_config("smoke", overrides={"method": "dann",
                                                             "criterion": "source"}).to_dict()


def test_old_results_fields_and_stage_names_read_as_the_new_ones(tmp_path):
    """A finished source-only run of before the renames is reused by compare."""
    cfg = make_config("smoke", overrides={"method": "source-only"})
    old_stages = [["warmup", cfg.warmup_steps], ["source", Plan(cfg).stages[1].steps]]
    results = {"config": cfg.to_dict(), "stages": old_stages,
               "search": [{"position": 0, "oracle_target_srcc": 0.25}]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    with pytest.warns(FutureWarning, match="deprecated"):
        reused = finished(cfg, str(tmp_path))
    assert reused["stages"] == Plan(cfg).as_list() == [["warmup", cfg.warmup_steps],
                                                       ["source-only", old_stages[1][1]]]
    assert reused["search"] == [{"position": 0, "target_test_srcc": 0.25}]


def test_old_log_records_and_checkpoint_keys_read_as_the_new_ones(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        json.dumps({"step": 5, "kind": "eval", "oracle_target_srcc": 0.5}) + "\n")
    with pytest.warns(FutureWarning, match="target_test_srcc"):
        assert read_records(str(tmp_path), "eval")[0]["target_test_srcc"] == 0.5
    with pytest.warns(FutureWarning, match="loss_sums"):
        assert renamed_keys({"running": 1}, "ck", CHECKPOINT_KEYS) == {"loss_sums": 1}
    with pytest.warns(FutureWarning, match="target-oracle"):
        assert renamed_stages([["oracle", 3]], "ck") == [["target-oracle", 3]]


def test_a_fork_accepts_the_old_stage_names():
    plan = Plan(make_config("smoke", overrides={"method": "source-only"}))
    with pytest.warns(FutureWarning):
        plan.check_fork([["warmup", plan.cfg.warmup_steps], ["source", plan.stages[1].steps]],
                        "after-source.pt")
