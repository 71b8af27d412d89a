"""Command-line config values read as the schema's types; lengths a model cannot embed refused."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2LMHeadModel,
    T5Config,
    T5ForConditionalGeneration,
)

from asvd.pipeline.study_checks import study_problems
from asvd.pipeline.validation import (
    coerce_command_line_values,
    config_error,
    load_schema,
    schema_problems,
)
from asvd.train.models import check_lengths, position_limit
from conftest import DEFAULT_CONFIG, REPO, load_yaml

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA_DOC = load_schema(SCHEMA)


def test_nested_command_line_strings_become_the_schemas_types():
    """What Snakemake makes of --config 'train={batch_size: 8, lr: 1e-3, ...}': every scalar a string."""
    config = load_yaml(DEFAULT_CONFIG)
    config["train"].update(batch_size="8", lr="1e-3", gradient_checkpointing="true", num_processes="null")
    config["run"]["seeds"] = ["0", "7"]
    config["methods"]["asvd"]["rank_rule"]["mrr"] = "0.1"
    config["base_model"]["pretrained"] = "null"  # a string is allowed here: kept as written
    coerce_command_line_values(config, SCHEMA)
    assert {key: config["train"][key] for key in ("batch_size", "lr", "gradient_checkpointing",
                                                  "num_processes")} == {
        "batch_size": 8, "lr": 1e-3, "gradient_checkpointing": True, "num_processes": None}
    assert config["run"]["seeds"] == [0, 7] and config["methods"]["asvd"]["rank_rule"]["mrr"] == 0.1
    assert config["base_model"]["pretrained"] == "null"
    assert schema_problems(config, SCHEMA) == []


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=10**6), st.floats(min_value=1e-9, max_value=1e3))
def test_any_number_written_as_text_is_read_back(batch, lr):
    config = {"train": {"batch_size": str(batch), "lr": repr(lr)}}
    coerce_command_line_values(config, SCHEMA_DOC)
    assert config["train"]["batch_size"] == batch and config["train"]["lr"] == lr


def test_text_that_is_no_number_stays_text_and_the_schema_names_it():
    config = load_yaml(DEFAULT_CONFIG)
    config["train"]["batch_size"] = "eight"
    coerce_command_line_values(config, SCHEMA)
    assert schema_problems(config, SCHEMA) == ["train.batch_size: 'eight' is not of type 'integer'"]


@pytest.mark.parametrize(("key", "value"), [
    (("train", "batch_size"), 16.0), (("run", "seeds"), [0, 1.0]), (("premise", "samples"), 64.5)])
def test_a_float_where_an_integer_belongs_is_refused_naming_the_key(key, value):
    config = load_yaml(DEFAULT_CONFIG)
    config[key[0]][key[1]] = value
    problems = schema_problems(config, SCHEMA)
    where = ".".join(key) + (".1" if isinstance(value, list) else "")
    assert problems and problems[0].startswith(f"{where}: ") and "not of type 'integer'" in problems[0]


def test_a_key_a_yaml_mapping_repeats_is_named_with_both_lines(tmp_path):
    from asvd.pipeline.validation import repeated_keys

    path = tmp_path / "study.yaml"
    path.write_text("train:\n  lr: 1.0e-3\n  batch_size: 8\n  lr: 3.0e-3\n"
                    "lora: &lora {r: 8}\nolora: {<<: *lora, r: 4}\n")  # a merge key may override
    assert repeated_keys(path) == [f"{path}:4: key 'lr' repeats the one on line 2 "
                                   "(YAML would keep this one silently)"]
    assert repeated_keys(DEFAULT_CONFIG) == []


def test_coercion_leaves_a_config_of_the_right_types_alone():
    config = load_yaml(DEFAULT_CONFIG)
    before = copy.deepcopy(config)
    coerce_command_line_values(config, SCHEMA)
    assert config == before


def test_lengths_beyond_a_models_positions_are_refused_naming_the_key():
    bart = BartForConditionalGeneration(BartConfig(
        vocab_size=20, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, max_position_embeddings=16))
    assert position_limit(bart) == 16
    # a length setting beyond the limit is harmless while no sequence reaches it
    check_lengths(bart, ("train.max_source_length", 128, 16), ("train.max_target_length", 16, 16))
    with pytest.raises(ValueError, match="^train.max_source_length: 128 lets sequences of 17 tokens "
                                         "through, beyond the 16 positions of this bart model"):
        check_lengths(bart, ("train.max_source_length", 128, 17), ("train.max_target_length", 4, 4))
    with pytest.raises(ValueError, match="^evaluation.max_new_tokens: 20 lets sequences of 20 tokens"):
        check_lengths(bart, ("evaluation.max_source_length", 8, 8), ("evaluation.max_new_tokens", 20, 20))
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_embd=8, n_layer=1, n_head=2, n_positions=32))
    check_lengths(gpt2, ("evaluation.max_source_length", 64, 28), ("evaluation.max_new_tokens", 4, 4))
    with pytest.raises(ValueError, match=r"^evaluation.max_source_length: prompts of up to 30 tokens "
                                         r"\(it is 64\) and answers of up to 4 .* exceed the 32"):
        check_lengths(gpt2, ("evaluation.max_source_length", 64, 30), ("evaluation.max_new_tokens", 4, 4))
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=20, d_model=8, d_kv=4, d_ff=8, num_layers=1, num_heads=2))
    assert position_limit(t5) is None  # relative positions: any length
    check_lengths(t5, ("train.max_source_length", 10_000, 10_000), ("train.max_target_length", 10, 10))


def test_training_on_prompts_longer_than_the_positions_names_the_key_before_any_step(tmp_path):
    """The IndexError the embedding would raise becomes an error naming the setting."""
    from asvd.train.loop import TrainSettings, train
    from asvd.train.models import build_word_tokenizer

    records = [{"input": " ".join(["word"] * 40), "target": "yes"}] * 2
    tokenizer = build_word_tokenizer([records[0]["input"], "yes"])
    bart = BartForConditionalGeneration(BartConfig(
        vocab_size=len(tokenizer), d_model=8, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8,
        max_position_embeddings=32, pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.bos_token_id or 0))
    before = {k: v.clone() for k, v in bart.state_dict().items()}
    settings = TrainSettings(epochs=1, batch_size=2, max_source_length=128)
    with pytest.raises(ValueError, match="^base_model.train.max_source_length: 128 lets sequences of"):
        train(bart, tokenizer, records, settings, seed=0, settings_key="base_model.train")
    assert all(v.equal(before[k]) for k, v in bart.state_dict().items())  # not one step taken


def test_the_first_problem_is_named_on_the_errors_first_line():
    error = config_error(["experiment: '..' does not match", "run.seeds.0: -1 is less than the minimum of 0"])
    assert str(error).splitlines() == ["invalid config: experiment: '..' does not match",
                                       "  run.seeds.0: -1 is less than the minimum of 0"]
    config = load_yaml(DEFAULT_CONFIG)
    config["experiment"] = ".."
    [problem] = schema_problems(config, SCHEMA)
    assert problem.startswith("experiment: '..' does not match") and "(not . or ..)" in problem


def test_cross_key_checks_pass_the_default_and_name_every_problem():
    """The checks the schema cannot express, called without Snakemake: one line per problem."""
    config = load_yaml(DEFAULT_CONFIG)
    assert study_problems(config, REPO) == []
    broken = copy.deepcopy(config)
    broken["run"]["methods"].append("nothing")
    broken["orders"]["1"] = ["alpha", "omega"]  # a command-line order replaces the file's
    broken["methods"]["asvd"]["rank_rule"] = {**config["methods"]["asvd"]["rank_rule"], "mrr": 0.9}
    broken["reference_runs"] = {"seqft": {"path": "no/such/run", "order": 1}}
    problems = study_problems(broken, REPO)
    assert [problem.split(":")[0] for problem in problems] == [
        "run.methods", "orders.1", "methods.asvd.rank_rule", "reference_runs.seqft",
        "reference_runs.seqft.path", "ablations.trr"]  # its trr 0.5 is below that mrr too


@pytest.mark.parametrize("change, message", [
    (lambda c: c["methods"]["asvd"].update(train={"task_epochs": {"alpah": 2}}),
     "methods.asvd.train.task_epochs: 'alpah' is not in benchmark.tasks"),
    (lambda c: c["benchmark"]["tasks"].append({**c["benchmark"]["tasks"][0], "position": "last"}),
     "benchmark.tasks: 'alpha' is listed 2 times; list each task once"),
    (lambda c: c["base_model"].update(warm_start="encoder_decoder"),
     "base_model.warm_start: needs base_model.pretrained"),
], ids=["a method's task_epochs typo", "a task listed twice", "warm start of a built base"])
def test_a_key_read_nowhere_else_is_checked_where_it_is_read(change, message):
    """Accepted silently before: the typo trained every task at the default epochs, the second
    entry's settings were dropped, the warm start was ignored."""
    config = load_yaml(DEFAULT_CONFIG)
    change(config)
    assert any(problem.startswith(message) for problem in study_problems(config, REPO)), \
        study_problems(config, REPO)


def test_an_architecture_key_the_family_does_not_have_is_refused_before_the_model_is_built():
    from asvd.train.models import build_seq2seq, build_word_tokenizer

    tokenizer = build_word_tokenizer(["a b c"])
    architecture = {**load_yaml(DEFAULT_CONFIG)["base_model"]["architecture"], "encoder_layer": 3}
    with pytest.raises(ValueError, match=r"base_model.architecture: \['encoder_layer'\] are not "
                                         r"BartConfig settings \(did you mean 'encoder_layers'\?\)"):
        build_seq2seq(tokenizer, "bart", architecture, seed=0)
    del architecture["encoder_layer"]
    assert build_seq2seq(tokenizer, "bart", architecture, seed=0).config.encoder_layers == 2


@pytest.mark.parametrize("change, key", [
    (lambda c: c.update(experiment="p1\n"), "experiment"),
    (lambda c: c["orders"].update({"2\n": c["orders"]["1"]}), "orders"),
    (lambda c: c["run"].update(methods=["seqft", "asvd\n"]), "run.methods.1"),
    (lambda c: c["benchmark"]["tasks"][0].update(name="alpha\n"), "benchmark.tasks.0.name"),
    (lambda c: c["methods"].update({"mine\n": c["methods"]["seqft"]}), "methods"),
    (lambda c: c.update(reference_runs={"ref\r\n": {"path": "x", "order": 1}}), "reference_runs"),
], ids=["experiment", "order key", "run method", "task name", "method key", "reference name"])
def test_a_name_with_a_trailing_newline_is_refused_naming_its_key(change, key):
    """A final ``$`` of a name's pattern is the end of the string: ``"p1\\n"`` would otherwise
    pass and become a folder, wildcard or key ending in a newline (or replace order 2's key)."""
    config = load_yaml(DEFAULT_CONFIG)
    config["orders"] = {str(order): tasks for order, tasks in config["orders"].items()}
    assert schema_problems(config, SCHEMA_DOC) == []
    change(config)
    problems = schema_problems(config, SCHEMA_DOC)
    assert any(p.startswith(f"{key}: ") and "does not match" in p for p in problems), problems


def test_the_renamed_constraint_key_is_refused_pointing_to_its_new_name():
    config = load_yaml(DEFAULT_CONFIG)
    config["methods"]["asvd"]["project"] = config["methods"]["asvd"].pop("acts_on")
    assert [line for line in schema_problems(config, SCHEMA) if "methods.asvd" in line] == [
        "methods.asvd.project: 'gradient' should not be valid under {} "
        "(renamed acts_on (gradient or update))"]


def test_the_variants_are_checked_with_every_other_cross_key_problem():
    """Before, a bad ablation stopped the Snakefile with a traceback once the checks had passed,
    and hid a bad trade-off behind it; now both are lines of the one report."""
    config = load_yaml(DEFAULT_CONFIG)
    config["ablations"]["method"] = "seqft"
    config["tradeoff"]["lr_scales"] = [1]
    problems = study_problems(config, REPO)
    assert ("ablations.method: 'seqft' does not use the importance rank rule (its rank_rule is "
            "None)") in problems
    assert any(line.startswith("tradeoff.lr_scales: 1 (a factor other than 1") for line in problems)


def test_first_task_inside_a_rank_rule_is_refused_pointing_to_the_method_key():
    config = load_yaml(DEFAULT_CONFIG)
    config["methods"]["osft"]["rank_rule"]["first_task"] = "full"
    assert [line for line in schema_problems(config, SCHEMA) if "methods.osft" in line] == [
        "methods.osft.rank_rule.first_task: 'full' should not be valid under {} "
        "(moved to methods.<name>.first_task)"]


def test_a_tradeoff_over_an_ablation_variant_is_checked_as_the_study_builds_it():
    from asvd.pipeline.study import Study

    config = load_yaml(DEFAULT_CONFIG)
    config["tradeoff"]["methods"] = ["asvd_trr050_block"]
    assert study_problems(config, REPO) == []
    assert "asvd_trr050_block_lrx2" in Study(config, REPO).tradeoff_methods


@pytest.mark.parametrize("change, message", [
    ({"task_symbols": 40}, "benchmark.task_symbols: 4 tasks x 40 own symbols + 24 shared need 184 "
                           "names; there are 140"),
    ({"task_symbols": 6}, "benchmark.task_symbols (6) must be a multiple of the number of classes (4)"),
    ({"symbols": 144}, "benchmark.symbols must be in [2, 140], got 144"),
    ({"general_skills": ["copy", "copy"]}, "benchmark.general_skills: ['copy', 'copy'] must be distinct"),
], ids=["too many own symbols", "own symbols not a multiple", "too many shared", "a skill twice"])
def test_a_synthetic_benchmark_that_cannot_be_generated_is_refused_naming_its_key(change, message):
    """Before, found by the first data job, and too many task symbols blamed `symbols`."""
    config = load_yaml(DEFAULT_CONFIG)
    config["benchmark"].update(change)
    assert [line for line in study_problems(config, REPO) if line.startswith("benchmark.")] == [
        line for line in study_problems(config, REPO) if line.startswith(message)] != []
