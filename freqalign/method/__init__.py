"""The FreqAlign method: model, window-selection criteria and frequency movement."""
from .criteria import dev_risk, score_all
from .model import FreqAlignNet, build_model, dann_lambda, grad_reverse
from .search import SearchState, jitter

__all__ = ["FreqAlignNet", "build_model", "dann_lambda", "grad_reverse", "dev_risk", "score_all",
           "SearchState", "jitter"]
