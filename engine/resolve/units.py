"""Unit checks (placeholder until the unit algebra lands)."""
def check_units(model, rvars):
    return None
