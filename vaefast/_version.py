"""vaefast's version, read from the installed distribution's metadata.

The one place the version is stated is the git tag: the build
(pyproject.toml, ``[tool.scikit-build] metadata.version``, setuptools-scm)
writes it into the metadata, ``X.Y.devN+g<hash>`` between tags. Everything
that reports a version (``vaefast.__version__``, ``vaefast --version``,
``vaefast info``, the saved-model header, bench/report.py) uses this value.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__: str = _version("vaefast")
except PackageNotFoundError:  # a source tree imported without being installed
    __version__ = "0+unknown"
