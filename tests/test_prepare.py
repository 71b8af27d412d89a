"""asvd.data.prepare: prompt templates and the records a task's files hold, bad records named by
file and line."""

import pytest

from asvd.data import prepare
from asvd.io import write_jsonl


def test_prepared_records_and_bad_data_errors(tmp_path, prepared):
    _, files = prepared
    records = prepare.load_records(files["alpha"]["train"])
    assert records[0]["input"].startswith("Task alpha")
    assert "[red, blue]" in records[0]["input"]
    assert records[0]["labels"] == ["red", "blue"]
    broken = tmp_path / "broken.jsonl"
    write_jsonl(broken, [{"id": "x", "task": "alpha", "input": "a"}])
    with pytest.raises(ValueError, match=r"broken.jsonl: record 1 lacks keys \['target', 'labels'\]"):
        prepare.load_records(broken)
    broken.write_text('{"id": 1}\nnot json\n')
    with pytest.raises(ValueError, match="broken.jsonl:2"):
        prepare.load_records(broken)


def test_olora_template():
    text = prepare.apply_template("olora", task="agnews", category="TC", instruction="What is the topic?",
                               labels=["World", "Sports"], text="Some news")
    assert text == ("Task:TC\nDataset:agnews\nWhat is the topic? Choose one from the option.\n"
                    "Option: World, Sports \nSome news\nAnswer:")
    with pytest.raises(ValueError, match="data.template"):
        prepare.apply_template("fancy", task="a", category="b", instruction="c", labels=["d"], text="e")
