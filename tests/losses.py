"""One loss module per (metric, options) for the whole test session, so each is compiled and imported once."""

from functools import lru_cache

import metricc


@lru_cache(maxsize=None)
def _cached(expression, options):
    return metricc.loss(expression, **dict(options))


def compiled(expression, **options):
    return _cached(expression, tuple(sorted(options.items())))
