"""Model monitors shared by the training export and serving (numpy only, no torch).

- ``psi``: bin edges from reference quantiles and the population stability index.
- ``features``: which ranker inputs are monitored, and how to read them from a feed dict.
- ``reference``: the drift reference a model bundle ships (``ranker/drift_reference.json``).
"""
