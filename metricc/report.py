"""metricc 0.2's module for what explain prints, kept so that code naming it keeps working: the explanation, its
formats and its plot now live in explanation.py, formats.py and plots.py, which this re-exports."""

from .explanation import SCHEMA_VERSION, Explanation
from .formats import FORMATS, format_explanation, format_json_dict
from .plots import plot_weights, weight_curves

__all__ = ["Explanation", "FORMATS", "SCHEMA_VERSION", "format_explanation", "format_json_dict", "plot_weights", "weight_curves"]
