"""One loss module per (metric, options) for the whole test session, so each is compiled and imported once."""

from functools import lru_cache

import torch

import metricc
from metricc.compiler import compile_metric
from metricc.emitter import class_name
from metricc.load import load_source


@lru_cache(maxsize=None)
def _cached(expression, options):
    return metricc.loss(expression, **dict(options))


def compiled(expression, **options):
    return _cached(expression, tuple(sorted(options.items())))


def value_and_gradient(module, preds, target):
    """The loss of (preds, target) and its gradient with respect to preds."""
    leaf = preds.clone().requires_grad_(True)
    loss = module(leaf, target)
    (gradient,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), gradient


def namespace_and_module(metric, **options):
    """The loaded module file of a compiled metric, and an instance of its loss class."""
    compilation = compile_metric(metric, **options)
    namespace = load_source(compilation.source)
    return namespace, getattr(namespace, class_name(compilation.name))()
