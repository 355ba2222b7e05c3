"""Integrate: solvers (euler, rk2, rk4, adaptive) and the driver loop."""
