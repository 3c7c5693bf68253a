"""A bounded schemathesis run against a live service's ``/openapi.json``, counted.

Every operation of the document gets ``max_examples`` positive cases (schema-valid) and as
many negative ones (schema-violating; for operations with a query, header or body: with a
path parameter alone schemathesis finds none within its filter budget), generated
derandomized (the same cases every run), without shrinking, and each answer is judged by
schemathesis' checks: no 5xx, a declared status code, content type and headers, a body that
matches the declared schema, negative cases rejected (4xx) and positive ones accepted.
Failures are collected, not raised, so one run reports every operation; the caller asserts
there are none.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS: dict[str, Any] = {
    "not_a_server_error": not_a_server_error,
    "status_code_conformance": status_code_conformance,
    "content_type_conformance": content_type_conformance,
    "response_headers_conformance": response_headers_conformance,
    "response_schema_conformance": response_schema_conformance,
    "negative_data_rejection": negative_data_rejection,
    "positive_data_acceptance": positive_data_acceptance,
}

CaseMap = Callable[[Any], Any]


@dataclass(frozen=True)
class Exempt:
    """A check not run on one operation, and why (what JSON Schema cannot say)."""

    operation: str  # "POST /v1/rollouts"
    check: str
    reason: str


@dataclass
class FuzzReport:
    """Counts and failures of one service's run."""

    service: str
    operations: int = 0
    cases: int = 0
    no_negative: list[str] = field(default_factory=list)  # operations with nothing to violate
    seconds: float = 0.0
    per_operation: dict[str, float] = field(default_factory=dict)  # label -> seconds
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for the test log."""
        return (
            f"{self.service}: {self.operations} operations, {self.cases} cases, "
            f"{len(self.failures)} failures, {self.seconds:.1f} s"
        )


def fuzz(
    service: str,
    base_url: str,
    *,
    max_examples: int = 6,
    headers: dict[str, str] | None = None,
    skip: Iterable[str] = (),
    exempt: Iterable[Exempt] = (),
    positive_map: dict[str, CaseMap] | None = None,
) -> FuzzReport:
    """Fuzz every operation of ``base_url`` but those in ``skip`` ("METHOD /path")."""
    started = time.perf_counter()
    report = FuzzReport(service)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=30)
    skipped, exempted = set(skip), {(e.operation, e.check) for e in exempt}
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path}"
        if label in skipped:
            continue
        report.operations += 1
        checks = [fn for name, fn in CHECKS.items() if (label, name) not in exempted]
        op_started = time.perf_counter()
        modes = [GenerationMode.POSITIVE]
        if len(op.query) + len(op.headers) + len(op.body):
            modes.append(GenerationMode.NEGATIVE)
        else:  # path parameters at most: schemathesis spends >1 s finding no negative case
            report.no_negative.append(label)
        for mode in modes:
            strategy = op.as_strategy(generation_mode=mode)
            mapper = (positive_map or {}).get(label) if mode is GenerationMode.POSITIVE else None
            if mapper is not None:
                strategy = strategy.map(mapper)
            _run(report, label, mode, strategy, base_url, headers or {}, checks, max_examples)
        report.per_operation[label] = time.perf_counter() - op_started
    _undeclared_methods(report, schema.raw_schema, base_url, skipped)
    report.seconds = time.perf_counter() - started
    return report


def _undeclared_methods(
    report: FuzzReport, doc: dict[str, Any], base_url: str, skipped: set[str]
) -> None:
    """One request per path with a method its document does not list: a 405, nothing else
    (schemathesis' own check for this runs only in its CLI's coverage phase)."""
    with httpx.Client(timeout=30) as client:
        for path, ops in doc.get("paths", {}).items():
            declared = {m.upper() for m in ops}
            method = next(
                (m for m in ("DELETE", "PUT", "PATCH", "POST") if m not in declared), None
            )
            if method is None or any(f"{m} {path}" in skipped for m in declared):
                continue
            url = base_url + re.sub(r"\{[^}]+\}", "1", path)
            report.cases += 1
            status = client.request(method, url).status_code
            if status != 405:
                report.failures.append(f"{method} {path}: undeclared method answered {status}")


def _run(
    report: FuzzReport,
    label: str,
    mode: GenerationMode,
    strategy: st.SearchStrategy[Any],
    base_url: str,
    headers: dict[str, str],
    checks: list[Any],
    max_examples: int,
) -> None:
    """``max_examples`` cases of ``strategy``, each sent and checked; failures recorded."""

    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every case is kept as is
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(strategy)
    def one(case: Any) -> None:
        report.cases += 1
        try:
            case.call_and_validate(base_url=base_url, headers=headers, checks=checks, timeout=30)
        except (Exception, BaseExceptionGroup) as exc:  # a failed check: kept, the run goes on
            report.failures.append(_describe(label, mode, case, exc))

    try:
        one()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            report.failures.append(f"{label} [{mode.value}]: no valid case could be generated")
        else:  # no parameters or body: nothing a request could get wrong
            report.no_negative.append(label)
    except Exception as exc:  # the strategy itself could not generate (reported, not hidden)
        report.failures.append(f"{label} [{mode.value}]: no cases generated: {exc}")


def _describe(label: str, mode: GenerationMode, case: Any, exc: Exception) -> str:
    parts = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    titles = "; ".join(f"{type(p).__name__}: {str(p).strip()[:300]}" for p in parts)
    try:
        curl = case.as_curl_command()
    except Exception:  # a case that cannot be printed is still reported
        curl = "(no curl)"
    return f"{label} [{mode.value}]: {titles}\n    {curl[:600]}"
