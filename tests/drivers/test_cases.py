"""Every case file of every registered driver (ours and installed third-party ones)."""

from __future__ import annotations

import pytest

from tests.drivers.casefiles import Case, all_cases, run

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    run(case)
