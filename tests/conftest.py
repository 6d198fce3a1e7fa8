"""Shared fixtures and hypothesis profiles; the "ci" profile keeps the suite within minutes on two cores."""

import os
import warnings

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit.*")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Emitted modules go to a per-session folder, never into the user's cache."""
    monkeypatch.setenv("METRICC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "metricc-cache"))
