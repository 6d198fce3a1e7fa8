"""A loss class compiled at run time, by its recipe: the metric, its name and its compile options.

`metricc.loss` records the recipe on the class it loads; a loss then pickles as (rebuild_loss, recipe, state), so
that another process (a torch.load, an mp.spawn or DataLoader worker) compiles the class again, or finds it in its
disk cache, instead of needing the module of the process that made it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from .runtime.options import DEFAULTS

#: The loss classes of this process by recipe, so that copy.deepcopy and repeated unpickling stay in memory.
_classes: Dict[Tuple[str, Optional[str], Tuple[Tuple[str, Any], ...]], type] = {}


def loss_class(expression: str, name: Optional[str], options: Dict[str, Any]) -> type:
    """The loss class of the metric with these compile options (from the disk cache or compiled), its recipe
    recorded on it for pickling."""
    from .cache import compiled_source
    from .load import load_source

    _, class_name, source = compiled_source(expression, name, options)
    compiled = getattr(load_source(source), class_name)
    recipe = (expression, name, _recipe_options(options))
    compiled.metricc_rebuild = (rebuild_loss, recipe)  # read by LossBase.__reduce_ex__, on this class only
    _classes[_key(*recipe)] = compiled
    return compiled


def rebuild_loss(expression: str, name: Optional[str], options: Dict[str, Any]) -> Any:
    """An uninitialised instance of the loss class of this recipe, for pickle to fill with the saved state."""
    compiled = _classes.get(_key(expression, name, options)) or loss_class(expression, name, options)
    return compiled.__new__(compiled)


def _recipe_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """The options as validated (plain Python values: class_weights a tuple of floats), those that differ from the
    defaults only; they compile to the same source as the options given."""
    from .arguments import make_options

    return {option: value for option, value in vars(make_options(**options)).items() if value != DEFAULTS[option]}


def _key(expression: str, name: Optional[str], options: Dict[str, Any]) -> Tuple[str, Optional[str], Tuple[Tuple[str, Any], ...]]:
    return expression, name, tuple(sorted(options.items()))
