"""Fixed-step integration methods: small objects with a ``step``.

``f(t, S)`` returns the net flows dS/dt for the packed state S of shape (rows, batch).
``k1`` is f at (t, S), already evaluated by the driver (which also saves outputs
from that evaluation), so Euler costs one evaluation a step and RK4 four.
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

Rates = Callable[[float, np.ndarray], np.ndarray]


class Solver(Protocol):
    name: str
    order: int

    def step(self, f: Rates, t: float, S: np.ndarray, dt: float, k1: np.ndarray) -> np.ndarray:
        """State at t + dt (same units as S)."""


class Euler:
    """Forward Euler, Vensim's default: S + dt * f(t, S)."""

    name = "euler"
    order = 1

    def step(self, f: Rates, t: float, S: np.ndarray, dt: float, k1: np.ndarray) -> np.ndarray:
        return S + dt * k1


class RK2:
    """Heun's method (explicit trapezoid), second order."""

    name = "rk2"
    order = 2

    def step(self, f: Rates, t: float, S: np.ndarray, dt: float, k1: np.ndarray) -> np.ndarray:
        k2 = f(t + dt, S + dt * k1)
        return S + (0.5 * dt) * (k1 + k2)


class RK4:
    """The classic fourth-order Runge-Kutta method (as Vensim's RK4 Fixed)."""

    name = "rk4"
    order = 4

    def step(self, f: Rates, t: float, S: np.ndarray, dt: float, k1: np.ndarray) -> np.ndarray:
        h = 0.5 * dt
        k2 = f(t + h, S + h * k1)
        k3 = f(t + h, S + h * k2)
        k4 = f(t + dt, S + dt * k3)
        return S + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)


FIXED_STEP: dict[str, type] = {"euler": Euler, "rk2": RK2, "rk4": RK4}
METHODS = ("euler", "rk2", "rk4", "adaptive")
