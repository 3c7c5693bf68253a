"""The console in a real headless Chromium (Debian's, driven by Playwright) against a real stack.

The serving processes are the session's ``live_stack`` (shared with the serving integration
tests, so not started twice); beside them this package starts what the console also reads and
writes through, each a real process: the events API and the ingest worker (an event changes
the next list), a feature store service (the one the health test kills), the rollouts service
with the example experiment declared and an admin token, and the console itself. A failing
test leaves a screenshot of its page under reports/browser/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from deploy.local.processes import RunningProcess, start, stop, wait_ready
from deploy.local.stack import service_on_free_port
from tests.integration.serving_fixtures import LiveStack

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "reports" / "browser"
CHROMIUM = "/usr/bin/chromium"
# docs/ENVIRONMENT: what runs headless Chromium here (Playwright adds --headless and a fresh
# profile directory of its own for every launch).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "console-test-token"
SERVED = ("gateway", "gateway_in_process", "candidate_generation", "filtering", "ranking",
          "reranking")  # fmt: skip


@dataclass
class ConsoleStack:
    """The console's address and the processes it was pointed at (beside ``live_stack``)."""

    url: str
    procs: dict[str, RunningProcess]
    live: LiveStack

    def kill(self, name: str) -> None:
        """SIGKILL one of this package's processes for good (it is not started again)."""
        proc = self.procs.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)


def _specs(live: LiveStack, kafka: str, mlflow: str, root: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topic = f"console-{tag}"
    common = {**live.env, "CASCADE_KAFKA_BOOTSTRAP": kafka}
    specs = {
        "events": service_on_free_port("events", {**common, "CASCADE_EVENTS_TOPIC": topic}),
        "ingest": service_on_free_port(
            "ingest",
            {
                **common,
                "CASCADE_INGEST_TOPIC": topic,
                "CASCADE_INGEST_DLQ_TOPIC": f"{topic}.dlq",
                "CASCADE_INGEST_GROUP_ID": topic,
                "CASCADE_INGEST_SESSION_TIMEOUT_MS": "6000",
                "CASCADE_INGEST_HEARTBEAT_INTERVAL_MS": "2000",
            },
        ),  # fmt: skip
        "feature_store": service_on_free_port("feature_store", common),
        "rollouts": service_on_free_port(
            "rollouts",
            {
                **common,
                "CASCADE_ROLLOUTS_STATE_PATH": str(root / "rollouts.sqlite"),
                "CASCADE_ROLLOUTS_CACHE_DIR": str(root / "candidates"),
                "CASCADE_ROLLOUTS_EXPERIMENTS_FILE": str(REPO / "config/experiments.example.yaml"),
                "CASCADE_ROLLOUTS_ADMIN_TOKEN": TOKEN,
                "CASCADE_ROLLOUTS_EVENTS_TOPIC": topic,
                "CASCADE_ROLLOUTS_SCRAPE_TARGETS": f"gateway={live.url('gateway')}",
            },
        ),  # fmt: skip
    }
    urls = {n: live.url(n) for n in SERVED} | {n: s.url for n, s in specs.items()}
    specs["console"] = service_on_free_port("console", {
        **common, "CASCADE_CONSOLE_SERVICE_URLS": ",".join(f"{n}={u}" for n, u in urls.items()),
        "CASCADE_MLFLOW_URI": mlflow, "CASCADE_CONSOLE_SCRAPE_S": "1",
    })  # fmt: skip
    return specs


@pytest.fixture(scope="package")
def console_stack(
    live_stack: LiveStack,
    kafka_bootstrap: str,
    mlflow_tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleStack]:
    """The console and the services it reads beside ``live_stack``, all started at once."""
    root = tmp_path_factory.mktemp("console")
    specs = _specs(live_stack, kafka_bootstrap, mlflow_tracking_uri, root)
    procs: dict[str, RunningProcess] = {}
    try:
        for name, spec in specs.items():
            procs[name] = start(spec, root / "logs")
        for proc in procs.values():
            wait_ready(proc)
        stack = ConsoleStack(specs["console"].url, procs, live_stack)
        yield stack
    finally:  # all told to stop at once: each may take its grace period
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            stop(proc)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (the browser is Debian's Chromium, never a download)."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless system Chromium."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class ConsolePage:
    """A fresh page on the console, and what its console said that was an error."""

    page: Page
    base: str
    errors: list[str]

    def open(self, section: str) -> Page:
        """Load ``/#section`` and wait until that page has drawn its data."""
        self.page.goto(f"{self.base}/#{section}")
        self.page.wait_for_selector(f"main[data-page='{section}'][data-state='loaded']")
        return self.page


@pytest.fixture
def console_page(
    browser: Browser, console_stack: ConsoleStack, request: pytest.FixtureRequest
) -> Iterator[ConsolePage]:
    """A new browser context and page; console errors and page exceptions are collected."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    request.node.console_page = page
    yield ConsolePage(page, console_stack.url, errors)
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed test with a page open, save what the page showed."""
    report = yield
    page = getattr(item, "console_page", None)
    if report.when == "call" and report.failed and page is not None and not page.is_closed():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{item.name}.png"
        page.screenshot(path=str(path), full_page=True)
        report.sections.append(("screenshot", str(path)))
    return report
