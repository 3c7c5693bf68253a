# Cascade: the two commands a newcomer needs are `make up` and `make test`.
.PHONY: bootstrap up up-detached down status compose-env test test-fast lint data train evaluate-seeds bench loadtest loadtest-locust simulate rollout-demo rollout-decisions experiment-sensitivity soak clean skew bench-monitors

PY := .venv/bin/python

bootstrap:  ## install Debian packages and the .venv (idempotent)
	@scripts/bootstrap.sh

up: bootstrap  ## run the whole platform locally (trains on first run); Ctrl-C stops it
	@$(PY) -m deploy.local up

up-detached: bootstrap  ## same as up, but return once everything is ready
	@$(PY) -m deploy.local up --detach

down:  ## stop everything `up` started
	@$(PY) -m deploy.local down

status:  ## what runs where
	@$(PY) -m deploy.local status

compose-env: bootstrap  ## credentials for docker compose (.env) and the admin token, generated once
	@$(PY) -m deploy.compose_env

test: bootstrap data lint  ## lint, then the whole test suite (starts its own Redis, broker and MLflow)
	@$(PY) -m pytest -n 2 --dist loadscope --no-loadscope-reorder

test-fast: bootstrap  ## unit tests only
	@$(PY) -m pytest tests/unit

lint: bootstrap  ## ruff (lint + format) and mypy --strict
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy shared services deploy training loadtests

data: bootstrap  ## MovieLens-100K into data/ml-100k (from the recbole wheel on PyPI)
	@$(PY) -m training.data.fetch

train: data  ## train, evaluate, export to models/ and register in MLflow ($$MLFLOW_TRACKING_URI)
	@MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:5050} $(PY) -m training.pipeline

evaluate-seeds: data  ## every model on both protocols over three split seeds (SEEDS="42 2020 7"): mean ± sd, validation beside test, reports/evaluation_seeds.md
	@$(PY) -m training.seeds --seeds $${SEEDS:-42 2020 7}

bench: bootstrap data  ## benchmarks: writes reports/bench.json and prints a table
	@$(PY) -m loadtests.bench

loadtest: bootstrap  ## open-loop rate steps against a running stack (make up first): verdict per stage vs the latency budget, reports/loadtest/
	@$(PY) -m loadtests.loadtest --out reports/loadtest

loadtest-locust: bootstrap  ## locust scenario against a running gateway, CSV under reports/
	@.venv/bin/locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s \
		--host $${CASCADE_GATEWAY_URL:-http://127.0.0.1:8000} --csv reports/locust

simulate: bootstrap  ## simulated users (hidden ground truth) against a running stack (make up first): per-arm clicks, reports/simulator/
	@$(PY) -m loadtests.simulator --gateway $${CASCADE_GATEWAY_URL:-http://127.0.0.1:8000} --events $${CASCADE_EVENTS_URL:-http://127.0.0.1:8001} --out reports/simulator/summary.json

rollout-demo: bootstrap  ## a candidate derived, registered, shadowed then canaried on a running stack (make up first); KIND=worse|same|slower
	@$(PY) -m loadtests.rollout_demo --kind $${KIND:-worse}

soak: bootstrap data  ## the serving stack at 70% of its capacity for MINUTES (10) with events flowing: errors, RSS and Redis memory growth, reports/soak/
	@$(PY) -m loadtests.soak --minutes $${MINUTES:-10}

rollout-decisions: bootstrap data  ## how often the rollout analysis decides wrong (A/A, worse models, many seeds): reports/rollouts/
	@$(PY) -m loadtests.rollout_decisions --seeds $${SEEDS:-300}

experiment-sensitivity: bootstrap data  ## users each experiment method needs for a small lift (A/B, CUPED, interleaving) and A/A false positives: reports/experiments/
	@$(PY) -m loadtests.experiment_sensitivity --seeds $${SEEDS:-200}

skew: bootstrap  ## training-serving skew of the ranker's features on a running stack (make up first): reports/skew/
	@$(PY) -m services.monitors.skew --events-dir $${CASCADE_OFFLINE_SINK_DATA_DIR:-data/events} \
		--bootstrap $${CASCADE_KAFKA_BOOTSTRAP:-127.0.0.1:19092} --redis-url $${CASCADE_REDIS_URL:-redis://127.0.0.1:6390/0}

bench-monitors: bootstrap  ## hot-path cost of the drift monitor (µs per ranked request)
	@$(PY) -m loadtests.bench_monitors

clean:  ## remove generated models, reports and runtime state (keeps data/ and .venv)
	rm -rf models reports .run
