"""HTTP routes of the feature_store service."""
