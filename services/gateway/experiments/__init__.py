"""The gateway's part of A/B and interleaving experiments: layered assignment, the arms'
variants, team-draft interleaving of two rankers, exposure in the answer and the served log."""
