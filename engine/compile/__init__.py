"""Compile: resolved model -> generated numpy step functions."""
