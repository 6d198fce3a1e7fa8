"""The one place metricc's version is written: the package (metricc.__version__), pyproject.toml (setuptools reads
it from here) and the runtime's import check of emitted files all read it."""

__version__ = "0.5.0"
