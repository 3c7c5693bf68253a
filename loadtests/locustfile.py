"""Locust load test of the gateway: ``make loadtest`` (against a stack started with ``make up``).

    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s \\
        --host http://127.0.0.1:8000 --csv reports/locust

Users are MovieLens ids (1-943) plus a share of ids no one has seen (the cold-start path);
every tenth request asks for the explain trace. A 200 answer marked ``degraded`` is counted
under its own name (``/v1/recommendations [degraded]``), so the CSV shows how much of the
traffic a stage fell back on; anything but a 200 with items is a failure. Settings come from the
environment: CASCADE_LOADTEST_K (20), CASCADE_LOADTEST_UNKNOWN_SHARE (0.1),
CASCADE_LOADTEST_WAIT_S (think time per simulated user, 0.05-0.25 s).
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, between, task

from shared.platform.auth import read_headers  # locust puts the working directory on the path

K = int(os.environ.get("CASCADE_LOADTEST_K", "20"))
UNKNOWN_SHARE = float(os.environ.get("CASCADE_LOADTEST_UNKNOWN_SHARE", "0.1"))
WAIT = [float(x) for x in os.environ.get("CASCADE_LOADTEST_WAIT_S", "0.05,0.25").split(",")]


class GatewayUser(FastHttpUser):
    """One client asking the gateway for recommendations, one request at a time."""

    wait_time = between(WAIT[0], WAIT[-1])
    default_headers = read_headers()  # the read token, where the platform protects reads

    @task
    def recommendations(self) -> None:
        """GET /v1/recommendations for a random user; degraded answers are named apart."""
        if random.random() < UNKNOWN_SHARE:
            user = f"loadtest-new-{random.randrange(10**9)}"
        else:
            user = str(random.randint(1, 943))
        explain = "&explain=true" if random.random() < 0.1 else ""
        path = f"/v1/recommendations?user_id={user}&k={K}{explain}"
        with self.client.get(path, name="/v1/recommendations", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            body = resp.json()
            if body.get("degraded"):  # reported under its own name, counted once
                resp.request_meta["name"] = "/v1/recommendations [degraded]"
            if len(body.get("items", ())) == 0:
                resp.failure("no items in the answer")
            else:
                resp.success()
