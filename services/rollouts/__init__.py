"""The rollout controller: canary and shadow rollouts of registered models, judged as they run.

See docs/rollouts.md. A rollout is declared as data (``plan``), its state kept in SQLite
(``store``), its aliases moved in MLflow (``registry_ops``), its traffic split published to the
gateways (``GET /v1/assignments``) and every step judged (``analysis``) from the services'
metrics (``metrics_source``) and the exposure log joined with events (``exposure``).
"""
