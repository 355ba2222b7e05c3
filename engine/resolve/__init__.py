"""Resolve: names, subscripts, stateful builtins, dependency order, units."""
