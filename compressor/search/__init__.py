"""`compressor search`: the fastest student on a target within an accuracy tolerance, found
by Optuna over whole candidate recipes (kind, size, distillation, quantization), each trained,
exported, scored and timed like a compress run, then the chosen one shipped."""

from compressor.search.run import plan, search
from compressor.search.speed import SearchTarget
from compressor.search.study import parse_budget

__all__ = ["SearchTarget", "parse_budget", "plan", "search"]
