"""The plan's targets scored against model results (``lxsd scorecard``): a re-export.

The one implementation is :mod:`engine.analysis.targets`; this module keeps the old import
path working (``from engine.scorecard import scorecard``).
"""
from engine.analysis.targets import COLUMNS, ScorecardError, evaluate, measure_value, scorecard, variables_needed
from engine.analysis.targets import read_target_tables as load_targets

__all__ = ["COLUMNS", "ScorecardError", "evaluate", "load_targets", "measure_value", "scorecard", "variables_needed"]
