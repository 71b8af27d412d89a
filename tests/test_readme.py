"""The "What we tested" table (docs/faults.md) points only at tests that exist, and every row at one."""

import re

from conftest import REPO


def test_every_row_of_what_we_tested_names_existing_tests():
    section = (REPO / "docs" / "faults.md").read_text()
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| input")]
    assert len(rows) >= 20
    for row in rows:
        tests = re.findall(r"`(test_\w+\.py)::(test_\w+)`", row)
        assert tests or "same test," in row, row  # "same test": the one named in the row above
        for file, name in tests:
            assert f"def {name}(" in (REPO / "tests" / file).read_text(), f"{file}::{name} (row: {row[:60]})"
