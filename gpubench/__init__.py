"""gpubench application layer: run plans, fleets, the self-test, isolation checks, the services
both faces call, and the headless CLI (the config model they use is scenarios.config)."""
from engine import __version__

__all__ = ["__version__"]
