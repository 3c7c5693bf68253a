"""HTTP routes of the filtering service."""
