"""gpubench application layer: configuration, run plans, the headless CLI."""
from engine import __version__

__all__ = ["__version__"]
