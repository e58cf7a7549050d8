"""The ``freqalign`` command line: one function per subcommand (train, compare, study, eval,
score, config, info).

A user mistake (unknown dataset, missing path, bad config key, a grid that does not fit the
feature map, an unsafe checkpoint) or a fault around a run (a non-finite loss, a full disk, a
busy run folder, a lost process) is a ``freqalign.errors.FreqAlignError``: it is printed as
one line on stderr with exit status 2 (set ``FREQALIGN_DEBUG=1`` to see its traceback too),
and so is an ``OSError`` of a full, read-only or failing disk anywhere (``DISK_FAULTS``). A
run stopped by SIGTERM or SIGINT prints where it saved and exits with 128 + the signal.
Bad command-line values are argparse's usage errors, also exit status 2. Any other exception
is a bug and raises with its traceback.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings

from .errors import FreqAlignError, MissingFileError, os_fault
from .run.config import METHODS, PRESETS
from .train.preempt import Interrupted

DISK_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (else argparse's usage error, exit status 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _scores_file(text: str) -> str:
    """An argparse type: a ``.csv`` or ``.json`` file name, checked before any image is scored."""
    if os.path.splitext(text)[1].lower() not in (".csv", ".json"):
        raise argparse.ArgumentTypeError(f"must end in .csv or .json, got {text!r}")
    return text


def _config_args(p: argparse.ArgumentParser, method: bool = True) -> None:
    p.add_argument("--config", default="", help="YAML file of config keys")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="smoke (<1 min on 2 cores), demo (default: pretrained EfficientNet-Lite0, about 4 min "
                   "after its caches), scratch (the from-scratch CNN), paper (ResNet-50)")
    if method:
        p.add_argument("--method", choices=METHODS, default=None, help="default: freqalign")
    p.add_argument("--device", default=None, help="auto (default) | cpu | cuda | cuda:N")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. lr=3e-4 criterion=source")


def _crops_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--crops", type=_int_at_least(0), default=0, metavar="N",
                   help="score each image as the mean over N crops on a grid spanning it "
                        "(1: the centre crop; default: the checkpoint's eval_crops)")


def _make_config(args, **explicit):
    from .run.config import make_config, parse_overrides

    return make_config(args.preset, args.config, parse_overrides(args.overrides),
                       device=args.device, **explicit)


# what the protocol comparison of a preset found over seeds (README "Results", issue 23): one
# run of one method says little on its own
FINDINGS = {
    "demo": ("benchmarks/results/method/compare_protocol.md", "12 fresh seeds, gate not met "
             "(neither method aligns): freqalign - dann +0.023 [+0.003, +0.042] on every target "
             "image, both below source-only"),
    "scratch": ("benchmarks/results/method/scratch/compare_protocol.md", "8 fresh seeds, gate not "
                "met: freqalign - dann -0.026 [-0.095, +0.042], dann - source-only +0.034 "
                "[-0.027, +0.094]"),
}


def _print_results(results: dict, out: str) -> None:
    print(f"\n{results['method']} ({results['preset']}, seed {results['seed']}, "
          f"{results['seconds']} s)")
    print(f"{'':15} {'SRCC':>7} {'PLCC':>7} {'KRCC':>7} {'RMSE':>7}")
    for name, key in (("target all", "target_all"), ("target held-out", "target_heldout"),
                      ("target test", "target"), ("source val", "source_val")):
        m = results[key]
        print(f"{name:15} {m['srcc']:7.4f} {m['plcc']:7.4f} {m['krcc']:7.4f} {m['rmse']:7.4f}")
    sel, align = results["selected_window"], results["alignment"]
    band = ""
    if sel and sel["position"] is not None:
        print(f"selected window: position {sel['position']} (size {sel['size']}), "
              f"frequencies {sel['freqs']}, criterion {results['criterion']}")
        band = f", its band {align['bands'][str(sel['position'])]:.3f}"
    print(f"held-out domain accuracy of a fresh classifier (0.5 = aligned): GAP "
          f"{align['gap']:.3f}{band}")
    print(f"report: {os.path.join(out, 'report.md')}")
    if results["preset"] in FINDINGS:
        path, found = FINDINGS[results["preset"]]
        print(f"compared over seeds ({path}): {found}")


def cmd_train(args) -> int:
    from .run.config import apply, config_from_dict, load_yaml
    from .run.files import CheckpointFiles, config_file
    from .train import distributed
    from .train.loop import train

    if args.resume:
        saved = config_file(args.resume)
        if not os.path.isfile(saved):
            raise MissingFileError(f"--resume {args.resume}: no config.yaml there (not a run folder)")
        if not os.path.isfile(CheckpointFiles(args.resume).last):
            raise MissingFileError(f"--resume {args.resume}: no checkpoints/last.pt to resume from")
        cfg = config_from_dict(load_yaml(saved))
        if args.device:
            apply(cfg, {"device": args.device}, "--device")
        out = args.resume
    else:
        cfg = _make_config(args, method=args.method, seed=args.seed,
                           backbone_weights=args.backbone_weights)
        out = args.out or os.path.join("runs", f"{cfg.method}-{cfg.preset}-seed{cfg.seed}")
    results = train(cfg, out, resume=bool(args.resume))
    if distributed.is_main():
        _print_results(results, out)
    distributed.cleanup()
    return 0


def cmd_compare(args) -> int:
    from .train.compare import compare

    cfg = _make_config(args)
    out = args.out or os.path.join("runs", f"compare-{cfg.preset}")
    table = compare(cfg, out, seeds=args.seeds, first_seed=args.first_seed)
    print(table)
    return 0


def cmd_study(args) -> int:
    cfg = _make_config(args)
    out = args.out or os.path.join("runs", f"study-{cfg.preset}")
    if args.map:
        from .train.study_map import study_map

        print(study_map(cfg, out, checkpoint=args.checkpoint))
        return 0
    from .train.study import study

    print(study(cfg, out, seeds=args.seeds, first_seed=args.first_seed, stride=args.stride,
                warmups=args.warmups))
    return 0


def cmd_eval(args) -> int:
    from .train.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, args.dataset, device=args.device,
                                  batch_size=args.batch_size, crops=args.crops)
    print(json.dumps(metrics, indent=2))
    return 0


def _sorted(rows, order: str):
    """Rows in input order, by path, or by score, best first."""
    if order == "path":
        return sorted(rows)
    if order == "score":
        return sorted(rows, key=lambda row: -row[1])
    return rows


def cmd_score(args) -> int:
    from .data.file_scores import format_table, save_scores
    from .scoring import load_scorer

    scorer = load_scorer(args.checkpoint, device=args.device, crops=args.crops,
                         image_size=args.image_size)
    with warnings.catch_warnings(record=True) as caught:  # skipped files, huge images: a line each
        warnings.simplefilter("always")
        rows = scorer.score_paths(args.paths, batch_size=args.batch_size,
                                  skip_bad=args.skip_bad, progress=scorer.cfg.progress)
    for warning in caught:
        print(f"freqalign score: warning: {warning.message}", file=sys.stderr)
    rows = _sorted(rows, args.sort)
    print(format_table(rows, scorer.metric, scorer.higher_is_better))
    if args.out:
        save_scores(rows, args.out, scorer.metric, scorer.higher_is_better)
        print(f"wrote {len(rows)} scores to {args.out}")
    return 0


def cmd_config(args) -> int:
    from dataclasses import fields

    import yaml

    from .run.config import ALLOWED, Config

    if args.list_keys:
        defaults = Config()
        rows = [(f.name, yaml.safe_dump(getattr(defaults, f.name)).split("\n")[0], str(ALLOWED[f.name]))
                for f in fields(Config)]
        widths = [max(len(row[i]) for row in rows + [("key", "default", "")]) for i in range(2)]
        print(f"{'key':<{widths[0]}}  {'default':<{widths[1]}}  allows")
        for name, default, allowed in rows:
            print(f"{name:<{widths[0]}}  {default:<{widths[1]}}  {allowed}")
        print("(defaults before a preset; `freqalign config --show --preset NAME` resolves one)")
        return 0
    cfg = _make_config(args, method=args.method)
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0


def cmd_info(args) -> int:
    import platform

    import numpy
    import torch
    import torchvision

    import freqalign
    from .data.registry import known_datasets

    print(f"freqalign   {freqalign.__version__}  ({os.path.dirname(freqalign.__file__)})")
    print(f"python      {platform.python_version()}")
    print(f"torch       {torch.__version__}  (CUDA build {torch.version.cuda})")
    print(f"torchvision {torchvision.__version__}")
    print(f"numpy       {numpy.__version__}")
    print(f"cpu threads {torch.get_num_threads()}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            print(f"cuda:{i}      {torch.cuda.get_device_name(i)}")
    else:
        print("cuda        no GPU visible")
    print("backends:")
    for name, status in freqalign.backends().items():
        print(f"  {name:8} {status}")
    print(f"datasets:   {', '.join(known_datasets())}")
    return 0


EXAMPLES = """examples:
  freqalign train                                   # FreqAlign, preset demo: embedded-v7-source -> embedded-v7-target
  freqalign train --preset smoke --method dann lr=3e-4
  freqalign compare --preset demo --seeds 5
  freqalign eval runs/dann-demo-seed0/checkpoints/best.pt --dataset embedded-v7-target
  freqalign score runs/dann-demo-seed0/checkpoints/best.pt photos/ --sort score --out scores.csv
  freqalign config --show --preset demo window_size=16
  freqalign config --list-keys
"""


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="freqalign", description="FreqAlign domain adaptation for blind image quality "
        "assessment, on fast DCT frequency pooling.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"freqalign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train one method (default: the whole FreqAlign pipeline "
                       "on the embedded dataset, preset demo)")
    _config_args(p)
    p.add_argument("--seed", type=int, default=None, help="training seed (config seed; default 0)")
    p.add_argument("--out", default="", help="run folder (default runs/METHOD-PRESET-seedN)")
    p.add_argument("--resume", default="", metavar="DIR",
                   help="continue the run in DIR from its checkpoints/last.pt")
    p.add_argument("--backbone-weights", default=None, metavar="PATH",
                   help="local torchvision resnet50 state_dict for backbone=resnet50 (nothing downloads)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="source-only, dann, freqalign and target-oracle over seeds "
                       "-> compare.json and compare.md")
    _config_args(p, method=False)
    p.add_argument("--seeds", type=_int_at_least(1), default=5, help="number of seeds (default 5)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds run are FIRST_SEED .. FIRST_SEED + SEEDS - 1 (default 0)")
    p.add_argument("--out", default="", help="folder (default runs/compare-PRESET)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("study", help="transferability of every window position (branched from "
                       "one warm-up per seed) against GAP -> study.json/.md/.png")
    _config_args(p, method=False)
    p.add_argument("--seeds", type=_int_at_least(1), default=3, help="number of seeds (default 3)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds run are FIRST_SEED .. FIRST_SEED + SEEDS - 1 (default 0)")
    p.add_argument("--stride", type=_int_at_least(1), default=1,
                   help="window positions visited: every STRIDE-th (config search_stride; "
                   "default 1: all)")
    p.add_argument("--warmups", default="", metavar="DIR",
                   help="start each seed from the source warm-up of a `freqalign compare` run "
                   "of the same config in DIR (saves training it again)")
    p.add_argument("--map", action="store_true",
                   help="instead: the per-frequency transfer map of the frozen backbone (seconds; "
                   "no training) -> study_map.json/.md/.png")
    p.add_argument("--checkpoint", default="", metavar="PT",
                   help="with --map: a run's checkpoint to map instead of the backbone as built")
    p.add_argument("--out", default="", help="folder (default runs/study-PRESET)")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset")
    p.add_argument("checkpoint", help="a run's checkpoints/best.pt or last.pt")
    p.add_argument("--dataset", required=True,
                   help="dataset spec, e.g. embedded-v7-target (the demo's target), koniq10k:DIR, "
                   "csv:FILE (`freqalign info` lists them)")
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda | cuda:N (default: the checkpoint's, usually auto)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=128,
                   help="crops per forward pass (default 128)")
    _crops_arg(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("score", help="score image files and folders with a checkpoint")
    p.add_argument("checkpoint", help="a run's checkpoints/best.pt or last.pt")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (recursive)")
    p.add_argument("--out", default=None, type=_scores_file,
                   help="also write the scores to a .csv or .json file")
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda | cuda:N (default: the checkpoint's, usually auto)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=32,
                   help="images read per batch (default 32)")
    p.add_argument("--image-size", type=_int_at_least(0), default=0,
                   help="side of the crops scored (default: the checkpoint's training size)")
    _crops_arg(p)
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images and decompression bombs (and count them)")
    p.add_argument("--sort", choices=("input", "path", "score"), default="input",
                   help="row order: input (default: as given, folders sorted), path, or score "
                   "(best first)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("config", help="print the resolved config of a preset, --config file and "
                       "overrides (--show), or every config key (--list-keys)")
    _config_args(p)
    show = p.add_mutually_exclusive_group()
    show.add_argument("--show", action="store_true",
                      help="print the resolved config as YAML (the default action)")
    show.add_argument("--list-keys", action="store_true",
                      help="every config key with its default and the values it allows")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("info", help="versions, backends, devices and datasets")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("freqalign: interrupted", file=sys.stderr)
        return 130
    except Interrupted as exc:  # a run stopped by SIGTERM or SIGINT, its state saved
        if os.environ.get("RANK", "0") == "0":  # every process stopped at the same step
            print(f"freqalign {args.command}: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except FreqAlignError as exc:
        if os.environ.get("FREQALIGN_DEBUG") == "1":
            raise
        print(f"freqalign {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full, read-only or failing disk under any other write
        if exc.errno not in DISK_FAULTS or os.environ.get("FREQALIGN_DEBUG") == "1":
            raise
        print(f"freqalign {args.command}: error: {os_fault('cannot write', exc.filename, exc)}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
