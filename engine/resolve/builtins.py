"""The builtin functions the expression language knows, with their arity.

Stateless functions compile to one numpy operation each (``engine.compile.codegen``);
stateful ones are rewritten into internal stocks by ``engine.resolve.stateful``.
"""
from __future__ import annotations

# name -> (min args, max args)
STATELESS: dict[str, tuple[int, int]] = {
    "IF_THEN_ELSE": (3, 3),
    "MIN": (2, 2),
    "MAX": (2, 2),
    "ABS": (1, 1),
    "EXP": (1, 1),
    "LN": (1, 1),
    "LOG": (1, 2),
    "SQRT": (1, 1),
    "POWER": (2, 2),
    "INTEGER": (1, 1),
    "INT": (1, 1),
    "MODULO": (2, 2),
    "SIN": (1, 1),
    "COS": (1, 1),
    "TAN": (1, 1),
    "ARCSIN": (1, 1),
    "ARCCOS": (1, 1),
    "ARCTAN": (1, 1),
    "SIGN": (1, 1),
    "XIDZ": (3, 3),
    "ZIDZ": (2, 2),
    "QUANTUM": (2, 2),
    "STEP": (2, 2),
    "RAMP": (2, 3),
    "PULSE": (1, 2),
    "PULSE_TRAIN": (4, 4),
    "WITH_LOOKUP": (2, 2),
    "GET_TIME_VALUE": (3, 3),
    "VECTOR_SELECT": (5, 5),
    "INVERT_MATRIX": (1, 2),
    "VECTOR_SORT_ORDER": (2, 2),
    "VECTOR_REORDER": (2, 2),
    "VECTOR_RANK": (2, 2),
    "VECTOR_ELM_MAP": (2, 2),
    "ALLOCATE_BY_PRIORITY": (5, 5),
    "ALLOCATE_AVAILABLE": (3, 3),
    # Vensim's RANDOM family (engine/compile/random_streams.py); the seed argument may be left out
    "RANDOM_0_1": (0, 0),
    "RANDOM_UNIFORM": (2, 3),
    "RANDOM_NORMAL": (4, 5),
    "RANDOM_EXPONENTIAL": (4, 5),
    "RANDOM_GAMMA": (5, 6),
    "RANDOM_WEIBULL": (5, 6),
    "RANDOM_BETA": (6, 7),
    "RANDOM_POISSON": (5, 6),
    "RANDOM_TRIANGULAR": (5, 6),
    "SUM": (1, 1),
    "PROD": (1, 1),
    "VMIN": (1, 1),
    "VMAX": (1, 1),
}

STATEFUL: dict[str, tuple[int, int]] = {
    "INITIAL": (1, 1),
    "ACTIVE_INITIAL": (2, 2),
    "SMOOTH": (2, 2),
    "SMOOTHI": (3, 3),
    "SMOOTH3": (2, 2),
    "SMOOTH3I": (3, 3),
    "SMOOTHN": (4, 4),
    "DELAY1": (2, 2),
    "DELAY1I": (3, 3),
    "DELAY3": (2, 2),
    "DELAY3I": (3, 3),
    "DELAYN": (4, 4),
    "DELAY_FIXED": (3, 3),
    "TREND": (3, 3),
    "FORECAST": (3, 3),
    "INTEG": (2, 2),
    "SAMPLE_IF_TRUE": (3, 3),
}

# Rewritten by the resolver before compilation.
REWRITES: dict[str, tuple[int, int]] = {
    "GAME": (1, 1),  # interactive input in Vensim's gaming mode; outside it, its argument
    "ELMCOUNT": (1, 1),  # number of elements of a dimension
}

# Functions whose value changes every time step even with constant arguments.
TIME_INPUTS = ("STEP", "RAMP", "PULSE", "PULSE_TRAIN", "GET_TIME_VALUE", "RANDOM_0_1", "RANDOM_UNIFORM",
               "RANDOM_NORMAL", "RANDOM_EXPONENTIAL", "RANDOM_GAMMA", "RANDOM_WEIBULL", "RANDOM_BETA",
               "RANDOM_POISSON", "RANDOM_TRIANGULAR")

# Names that refer to the clock rather than to a variable (matched case-insensitively).
TIME_NAMES = {"TIME": "t", "TIME_STEP": "dt", "INITIAL_TIME": "t0", "FINAL_TIME": "t1", "SAVEPER": "saveper"}

ALL = {**STATELESS, **STATEFUL, **REWRITES}
