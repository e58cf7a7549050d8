"""``freqalign eval``: a saved checkpoint's metrics on any dataset spec."""
from __future__ import annotations

from ..metrics import evaluate
from ..method.model import build_model, check_grid
from . import checkpoint, distributed
from .config import config_from_dict
from .loop import predict


def evaluate_checkpoint(path: str, dataset: str, device: str = "auto", batch_size: int = 128) -> dict:
    """Metrics (SRCC, KRCC, PLCC, PLCC after logistic fit, RMSE) of checkpoint ``path`` on all of
    ``dataset`` (central crops of the checkpoint's ``image_size``)."""
    from ..data.registry import open_dataset

    ck = checkpoint.load(path)
    if "model" not in ck or "config" not in ck:
        raise ValueError(f"{path}: not a freqalign checkpoint (no model/config)")
    cfg = config_from_dict(ck["config"])
    cfg.eval_batch_size = batch_size
    _, _, dev = distributed.setup(device)
    model = build_model(cfg).to(dev)
    model.load_state_dict(ck["model"])
    check_grid(model, cfg)
    data = open_dataset(dataset, image_size=cfg.data_size or None, cache_dir=cfg.cache_dir or None,
                        seed=cfg.data_seed)
    out = predict(model, data, list(range(len(data))), cfg, dev)
    return {"checkpoint": path, "dataset": dataset, "n": len(data), "method": cfg.method,
            "step": ck.get("step"), **evaluate(out["pred"], out["true"])}
