"""asvd.train_log: the task train log as one typed record, written and read in one place."""

from __future__ import annotations

import json

import pytest

from asvd.train_log import TaskLog
from conftest import task_log


def test_the_record_round_trips_with_importance_and_piece_keys_in_place(tmp_path):
    record = task_log("beta", 2, penalty=[0.0, 0.1], ranks={"q": 8}, frozen_ranks={"q": 3},
                      granularity="block", importance={"block.0": 0.5}, l2_calls=2)
    log = TaskLog.from_record(record)
    assert log.importance == {"granularity": "block", "importance": {"block.0": 0.5}}
    assert log.extra == {"l2_calls": 2} and log.measured_importance
    log.write(tmp_path / "log.json")
    written = json.loads((tmp_path / "log.json").read_text())
    assert written == record and TaskLog.read(tmp_path / "log.json") == log
    # the order the file has always had: the loop's keys, the task's, then the constraint's
    keys = list(written)
    assert keys.index("final_loss") < keys.index("penalty") < keys.index("task") < \
        keys.index("granularity") < keys.index("max_violation") < keys.index("trained_parameters")


def test_a_log_without_penalty_or_importance_writes_neither(tmp_path):
    log = TaskLog.from_record(task_log())
    assert "penalty" not in log.record() and "importance" not in log.record()
    assert not log.measured_importance


def test_a_truncated_log_is_refused_naming_the_file_and_keys(tmp_path):
    path = tmp_path / "train_log.json"
    record = task_log()
    del record["frozen_ranks"], record["ranks"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"train_log.json: a task's train log lacks \['frozen_ranks', 'ranks'\]"):
        TaskLog.read(path)
