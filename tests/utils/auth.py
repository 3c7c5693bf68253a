"""The test session's admin token (every process the suite starts inherits it: conftest) and
the read token of the tests that protect reads."""

from __future__ import annotations

TEST_ADMIN_TOKEN = "test-session-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
# The read token, for the tests that protect reads (set per process, never session-wide).
TEST_READ_TOKEN = "test-session-read-token-0123456789"
READ = {"Authorization": f"Bearer {TEST_READ_TOKEN}"}
