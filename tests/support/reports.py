"""Reading verify's reports in tests."""

from __future__ import annotations

from builder.verify.spans import VerifyReport


def failed(report: VerifyReport) -> list[str]:
    """The descriptions of the report's checks that did not pass."""
    return [check.description for check in report.checks if not check.passed]
