"""The console as a person uses it, in headless Chromium against real services."""

from __future__ import annotations

import time

import httpx
import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from shared.events import Event, decode_event
from shared.monitors.features import FEATURE_NAMES
from tests.browser.conftest import TOKEN, ConsolePage, ConsoleStack

pytestmark = pytest.mark.integration
USER = "7"  # a user of the tiny MovieLens subset the serving integration tests do not look at


def _item_ids(page: ConsolePage) -> list[str]:
    rows = page.page.locator("[data-testid=items] tbody tr[data-item]")
    return [rows.nth(i).get_attribute("data-item") or "" for i in range(rows.count())]


def _find_event(bootstrap: str, topic: str, item_id: str, timeout_s: float = 15.0) -> Event | None:
    """The first event of ``topic`` (read from the start, no group) by USER on ``item_id``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                for event in (decode_event(r.value) for r in batch):
                    if event.user_id == USER and event.item_id == item_id:
                        return event
        return None
    finally:
        consumer.close()


@pytest.mark.parametrize("section", ["try", "health", "monitors", "rollouts", "latency"])
def test_every_page_loads_without_console_errors(console_page: ConsolePage, section: str) -> None:
    page = console_page.open(section)
    assert page.locator("main section").count() >= 1
    assert not page.locator("main .error").count(), page.locator("main .error").all_inner_texts()
    assert console_page.errors == []


def test_a_users_list_shows_titles_and_its_trace(console_page: ConsolePage) -> None:
    page = console_page.open("try")
    titles = page.locator("[data-testid=items] td.title").all_inner_texts()
    assert len(titles) == 10
    assert all(t.strip() and not t.startswith("item ") for t in titles), titles
    page.locator("[data-testid=items] tbody tr[data-item] button", has_text="trace").first.click()
    trace = page.locator("tr.trace").first
    assert "head scores" in trace.inner_text() and "p_interact" in trace.inner_text()
    bars = page.locator("[data-testid=waterfall] [data-bar]")
    names = {bars.nth(i).get_attribute("data-bar") for i in range(bars.count())}
    assert {"candidates", "ranking", "reranking", "two_tower"} <= names, names
    assert console_page.errors == []


def test_a_hide_removes_the_item_from_the_next_list(console_page: ConsolePage) -> None:
    page = console_page.page
    page.goto(f"{console_page.base}/#try?user={USER}")
    page.wait_for_selector("main[data-state='loaded'] [data-testid=items]")
    first = _item_ids(console_page)[0]
    page.locator(f"tr[data-item='{first}'] button[data-action=hide]").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=status]').textContent.includes('applied')",
        timeout=20_000,
    )
    after = _item_ids(console_page)
    assert first not in after and len(after) == 10, after
    assert console_page.errors == []


def test_a_like_from_try_it_reaches_the_events_api(
    console_page: ConsolePage, console_stack: ConsoleStack
) -> None:
    page = console_page.page
    page.goto(f"{console_page.base}/#try?user={USER}")
    page.wait_for_selector("main[data-state='loaded'] [data-testid=items]")
    item = _item_ids(console_page)[-1]
    page.locator(f"tr[data-item='{item}'] button[data-action=like]").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=status]').textContent.includes('applied')"
    )
    events = console_stack.procs["events"].spec.env
    event = _find_event(events["CASCADE_KAFKA_BOOTSTRAP"], events["CASCADE_EVENTS_TOPIC"], item)
    assert event is not None and event.type == "like", event
    assert event.event_id.startswith("console-") and event.position == 9
    assert console_page.errors == []


def test_monitors_show_psi_rows_for_the_live_rankers_variants(
    console_page: ConsolePage, console_stack: ConsoleStack
) -> None:
    # The ranking service samples 1 in 10 requests into its window: 20 requests put at least
    # two there (too few for a PSI: below min_requests a figure is listed as insufficient).
    for user in range(20, 40):
        assert console_stack.live.recommend(user_id=str(user), k=10).status_code == 200
    page = console_page.open("monitors")
    variant = page.locator("[data-testid=monitors] section[data-variant]").first
    assert variant.get_attribute("data-status") != "unavailable", variant.inner_text()
    features = variant.locator("[data-testid=feature-psi] tr[data-feature]")
    shown = {features.nth(i).get_attribute("data-feature") for i in range(features.count())}
    assert shown == set(FEATURE_NAMES)
    heads = variant.locator("[data-testid=head-psi] tr[data-head]")
    assert {heads.nth(i).get_attribute("data-head") for i in range(heads.count())} == {
        "p_interact", "p_like",
    }  # fmt: skip
    statuses = {features.nth(i).get_attribute("data-status") for i in range(features.count())}
    assert statuses <= {"ok", "warn", "alert", "insufficient"}, statuses
    assert "ok < 0.10" in page.locator("[data-testid=monitors]").inner_text()
    assert console_page.errors == []


def test_the_latency_page_shows_the_requests_against_the_budget(
    console_page: ConsolePage, console_stack: ConsoleStack
) -> None:
    for _ in range(5):
        assert console_stack.live.recommend(user_id=USER, k=10).status_code == 200
    total = "[data-testid=latency-table] tr[data-row=total] td.num >> nth=0"
    deadline = time.monotonic() + 20
    while True:  # the console scrapes every second in this stack: reload until it has them
        page = console_page.open("latency")
        if float(page.locator(total).inner_text()) >= 5 or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    assert float(page.locator(total).inner_text()) >= 5
    ranking = page.locator("[data-testid=latency-table] tr[data-row=ranking] td.num")
    assert ranking.nth(2).inner_text() != "–"  # a p99 in milliseconds
    assert console_page.errors == []


def test_health_shows_a_killed_service_as_down(
    console_page: ConsolePage, console_stack: ConsoleStack
) -> None:
    page = console_page.open("health")
    assert page.locator("tr[data-service=gateway][data-status=up]").count() == 1
    assert page.locator("tr[data-dependency=redis][data-status=up]").count() == 1
    assert page.locator("[data-testid=models] td", has_text="production").count() >= 1
    console_stack.kill("feature_store")
    page.reload()
    page.wait_for_selector("main[data-state='loaded']")
    row = page.locator("tr[data-service=feature_store]")
    assert row.get_attribute("data-status") == "down"
    assert "unreachable" in row.inner_text()
    assert page.locator("tr[data-service=gateway][data-status=up]").count() == 1


def test_stopping_an_experiment_needs_the_admin_token(
    console_page: ConsolePage, console_stack: ConsoleStack
) -> None:
    page = console_page.open("rollouts")
    card = page.locator("[data-experiment]").first
    experiment = card.get_attribute("data-experiment")
    card.locator("button[data-action=stop]").click()
    result = card.locator("[data-testid=action-result]")
    page.wait_for_function(
        "(el) => el.textContent.includes('refused')", arg=result.element_handle()
    )
    assert "401" in result.inner_text()
    page.fill("#token", TOKEN)
    page.dispatch_event("#token", "change")
    card.locator("button[data-action=stop]").click()
    page.wait_for_function("(el) => el.textContent.includes('done')", arg=result.element_handle())
    rollouts = console_stack.procs["rollouts"].spec.url
    state = httpx.get(f"{rollouts}/v1/experiments/{experiment}", timeout=10).json()["state"]
    assert state == "stopped"
    assert TOKEN not in page.content()  # the page never carries the token in its source
