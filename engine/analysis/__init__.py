"""Analysis on top of runs: dt convergence, scorecards, calibration, ensembles, sensitivity."""
