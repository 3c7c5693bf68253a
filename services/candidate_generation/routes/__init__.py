"""HTTP routes of candidate generation (translate HTTP to stage calls, nothing more)."""
