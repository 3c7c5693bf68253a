"""User profile tokens: age bucket, gender, occupation, zip prefix (hashed downstream)."""

from __future__ import annotations

PROFILE_FIELDS: tuple[str, ...] = ("age", "gender", "occupation", "zip")
_AGE_EDGES: tuple[tuple[int, str], ...] = (
    (18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55"),
)  # fmt: skip


def age_bucket(age: int | float | None) -> str:
    """MovieLens-1M style age bucket label."""
    if age is None or age != age or age <= 0:  # age != age: NaN
        return "unknown"
    for edge, label in _AGE_EDGES:
        if age < edge:
            return label
    return "56+"


def zip_prefix(zip_code: str | None) -> str:
    """First three characters of the zip code, upper-cased (regional granularity)."""
    if not zip_code:
        return "unknown"
    return str(zip_code).strip().upper()[:3] or "unknown"


def _norm(token: str | None) -> str:
    return str(token).strip().lower() if token else "unknown"


def profile_tokens(
    age: int | float | None, gender: str | None, occupation: str | None, zip_code: str | None
) -> tuple[str, str, str, str]:
    """The four profile tokens in PROFILE_FIELDS order."""
    return (age_bucket(age), _norm(gender), _norm(occupation), zip_prefix(zip_code))
