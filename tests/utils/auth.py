"""The test session's admin token: every process the suite starts inherits it (conftest)."""

from __future__ import annotations

TEST_ADMIN_TOKEN = "test-session-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
