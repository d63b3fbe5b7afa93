"""gpubench tui package."""
