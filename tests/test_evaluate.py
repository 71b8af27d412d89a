"""asvd.evaluation.evaluate and scoring: a checkpoint's greedy answers scored per task, prompts
cut by max_source_length counted."""

import json

from asvd.data.prepare import load_records
from asvd.evaluation import evaluate, ranking, scoring
from asvd.train.models import load_checkpoint


def test_normalised_exact_match():
    assert scoring.normalise("  Science or   Technology. ") == "science or technology"
    scores = scoring.score([{"input": "a", "target": "Very Negative"}, {"input": "b", "target": "red"}],
                           ["very negative!", "blue"])
    assert scores == {"metric": "exact_match", "correct": 1, "total": 2, "score": 50.0,
                      "unanswerable": 0}


def test_evaluate_checkpoint_writes_scores(tmp_path, prepared):
    root, files = prepared
    out = tmp_path / "eval.json"
    result = evaluate.evaluate_checkpoint(
        root / "base" / "model", {"alpha": files["alpha"]["test"], "general": files["general"]["test"]},
        out, batch_size=8, max_new_tokens=8)
    assert json.loads(out.read_text()) == result
    assert result["scores"]["alpha"]["total"] == 16
    # the scores are those of the model's own greedy answers, generated again here
    model, tokenizer = load_checkpoint(root / "base" / "model")
    for name in ("alpha", "general"):
        records = load_records(files[name]["test"])
        answers = evaluate.generate(model, tokenizer, [r["input"] for r in records], 8, 8, 128)
        expected = {**scoring.score(records, answers), "truncated": 0}
        # tasks that list their options are also scored by ranking them, the free-form general set not
        if name == "alpha":
            chosen = ranking.most_likely_options(model, tokenizer, records, 8, 128, 8)
            expected.update(ranking.ranked_scores(records, answers, chosen))
        assert ranking.rankable(records) == (name == "alpha")
        assert result["scores"][name] == expected
        assert expected["correct"] == sum(scoring.normalise(a) == scoring.normalise(r["target"])
                                          for a, r in zip(answers, records))


def test_prompts_cut_by_max_source_length_are_counted_and_warned_about(tmp_path, prepared, caplog):
    """A max_source_length below the prompts' length cuts off the text a task asks about: the
    eval counts the cut prompts per test set and the job's log names the set."""
    root, files = prepared
    longest = max(len(ids) for ids in load_checkpoint(root / "base" / "model")[1](
        [r["input"] for r in load_records(files["alpha"]["test"])])["input_ids"])
    with caplog.at_level("WARNING", logger="asvd.evaluation.evaluate"):
        result = evaluate.evaluate_checkpoint(root / "base" / "model", {"alpha": files["alpha"]["test"]},
                                              tmp_path / "eval.json", batch_size=8, max_new_tokens=4,
                                              max_source_length=longest - 1, rank_options=False)
    assert 0 < result["scores"]["alpha"]["truncated"] <= result["scores"]["alpha"]["total"]
    assert f"{files['alpha']['test']}: {result['scores']['alpha']['truncated']} of 16 prompts" in caplog.text
    whole = evaluate.evaluate_checkpoint(root / "base" / "model", {"alpha": files["alpha"]["test"]},
                                         tmp_path / "eval2.json", batch_size=8, max_new_tokens=4,
                                         max_source_length=longest, rank_options=False)
    assert whole["scores"]["alpha"]["truncated"] == 0
