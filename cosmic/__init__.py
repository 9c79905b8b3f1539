"""Cosmic Gardener: the game daemon."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cosmic-gardener")
except PackageNotFoundError:  # running from a tree that was never installed
    __version__ = "0+unknown"
