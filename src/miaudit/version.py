"""The installed package's version (results.json's "miaudit_version"); no other import."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("miaudit")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
