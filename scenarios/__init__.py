"""gpubench scenarios package."""
