"""The ssd-keras command-line app; also holds the package version."""

__version__ = "0.1.0"
