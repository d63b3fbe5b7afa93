"""gpubench results package."""
