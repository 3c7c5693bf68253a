"""HTTP routes of the ranking service."""
