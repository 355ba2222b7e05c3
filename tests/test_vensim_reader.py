"""PySD's parser is bounded in CPU time, not wall time: a parse that loops is stopped, a large model on a
busy machine is not (C-LEARN's parse hit the old 120 s wall-clock limit while the machine was loaded)."""
from __future__ import annotations

import time

import pytest

from engine.errors import ModelError
from engine.io.vensim_reader import _time_limit


def test_cpu_time_limit_stops_a_loop_and_ignores_waiting():
    with pytest.raises(ModelError, match="x.mdl: parsing used more than 1 s of CPU time"), _time_limit(1, "x.mdl"):
        while True:
            pass
    with _time_limit(1, "x.mdl"):
        time.sleep(1.3)          # waiting (another process on the CPU) does not count
