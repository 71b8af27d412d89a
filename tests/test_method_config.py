"""A method is one declared object: its pieces and schedule, read from its config block."""

import pytest

from asvd.method_config import Method, declared_methods
from conftest import effective_config

DEFAULT = declared_methods(effective_config()["methods"])


def test_a_block_gets_the_defaults_of_plain_sequential_fine_tuning():
    method = Method.from_config({"rank_rule": None})
    assert not method.constrained and not method.constrained_on(2)
    assert method.schedule == "sequential" and not method.starts_from_base
    assert method.target_modules == "auto" and method.train_other_params
    assert method.whole_model_copies == [] and not method.reads_earlier_tasks


def test_unknown_keys_and_schedules_are_named():
    with pytest.raises(ValueError, match=r"methods\.mine: unknown keys \['rank'\]"):
        Method.from_config({"rank_rule": None, "rank": 3}, "mine")
    with pytest.raises(ValueError, match=r"methods\.mine\.schedule: 'shuffled'"):
        Method.from_config({"rank_rule": None, "schedule": "shuffled"}, "mine")


def test_a_piece_key_is_read_by_its_name_and_only_a_declared_one():
    method = Method.from_config({"rank_rule": None, "replay": {"ratio": 0.5}, "ewc": None})
    assert method.piece("replay") == {"ratio": 0.5} and method.piece("ewc") is None
    assert method.pieces == {"replay": {"ratio": 0.5}}  # a null block is no piece
    with pytest.raises(KeyError, match="'replays' is no piece's key"):
        method.piece("replays")


def test_first_task_full_trains_task_one_without_the_constraint():
    rule = {"name": "uniform", "unfreeze": 0.5}
    full = Method.from_config({"rank_rule": rule, "first_task": "full"})
    constrained = Method.from_config({"rank_rule": rule})
    assert [full.constrained_on(t) for t in (1, 2)] == [False, True]
    assert [constrained.constrained_on(t) for t in (1, 2)] == [True, True]


@pytest.mark.parametrize("name, expected", [
    ("seqft", dict(constrained=False, starts_from_base=False, reads_earlier_tasks=False)),
    ("asvd", dict(constrained=True, uses_importance=True, whole_model_copies=[])),
    ("osft", dict(constrained=True, uses_importance=False)),
    ("ewc", dict(constrained=False, whole_model_copies=["ewc"])),
    ("lwf", dict(whole_model_copies=["lwf"])),
    ("replay", dict(reads_earlier_tasks=True, starts_from_base=False)),
    ("asvd_replay", dict(constrained=True, reads_earlier_tasks=True)),
    ("seqlora", dict(shares_lora=True, whole_model_copies=["lora"])),
    ("inclora", dict(shares_lora=False, whole_model_copies=["lora"])),
    ("olora", dict(shares_lora=False)),
    ("pertask", dict(starts_from_base=True, reads_earlier_tasks=False, schedule="per_task")),
    ("mtl", dict(starts_from_base=True, reads_earlier_tasks=True, schedule="joint")),
])
def test_the_default_studys_methods_are_what_their_papers_define(name, expected):
    method = DEFAULT[name]
    assert {key: getattr(method, key) for key in expected} == expected


def test_variants_of_the_ablation_and_the_tradeoff_are_named_for_what_they_change():
    from asvd.pipeline.ablations import lr_variant_of, lr_variants, retention_variants

    methods = {"asvd": {"rank_rule": {"name": "importance", "mrr": 0.1, "trr": 0.8}},
               "seqft": {"rank_rule": None}}
    spec = {"method": "asvd", "trr": [0.5, 0.8], "granularity": ["block"], "references": ["seqft"]}
    assert sorted(retention_variants(methods, spec)) == ["asvd", "asvd_trr050_block"]
    # where tuning may move asvd's own trr, its declared point runs under a name of its own
    assert sorted(retention_variants(methods, spec, keep_own_name=False)) == [
        "asvd_trr050_block", "asvd_trr080_block"]
    variants = lr_variants(methods, {"methods": ["seqft"], "lr_scales": [0.5, 4]})
    assert variants == {"seqft_lrx0p5": {"rank_rule": None, "lr_scale": 0.5},
                        "seqft_lrx4": {"rank_rule": None, "lr_scale": 4}}
    assert [lr_variant_of(name) for name in variants] == [("seqft", 0.5), ("seqft", 4.0)]
    assert lr_variant_of("asvd_trr050_block") is None
    for bad in (1, 1e-5):
        with pytest.raises(ValueError, match=f"tradeoff.lr_scales: {bad} "):
            lr_variants(methods, {"methods": ["seqft"], "lr_scales": [bad]})
