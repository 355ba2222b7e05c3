"""Parse: model files and equation text into the model representation."""
from engine.parse.expr import parse_expression, unparse
from engine.parse.model_file import load_model_file, model_from_dict

__all__ = ["parse_expression", "unparse", "load_model_file", "model_from_dict"]
