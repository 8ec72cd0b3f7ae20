"""Scenario parameters (MODEL.md sections 7, 12 and 13): defaults, bare numbers, overrides, errors.

Expected defaults are written out from MODEL.md, not read back from
``depletion.config``.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from depletion.config import SPECS, Scenario, load_scenario, parse_set, resolve
from depletion.errors import DepletionError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


# --------------------------------------------------------------------------- defaults
MODEL_DEFAULTS = {
    "memory_gib": 16.0,
    "min_free_kbytes": "auto",
    "watermark_scale_factor": 10,
    "highatomic_pages": 0,
    "f0_frac": {"dist": "uniform", "low": 0.7, "high": 1.0},
    "victims": 1,
    "threads": {"dist": "fixed", "value": 32},
    "mm_sharers": {"dist": "fixed", "value": 0},
    "rss_pages": {"dist": "fixed", "value": 262144},
    "anon_fraction": 0.9,
    "in_allocator_frac": 0.25,
    "wake_us": {"dist": "exponential", "mean": 200.0},
    "exit_allocs": {"dist": "poisson", "mean": 4.0},
    "exit_gap_us": {"dist": "exponential", "mean": 50.0},
    "order_probs": [0.90, 0.07, 0.02, 0.01],
    "class_probs": {"kernel": 0.6, "nofs": 0.3, "noio": 0.05, "atomic": 0.05},
    "hold_us": {"dist": "exponential", "mean": 1000.0},
    "stack_pages": 4,
    "teardown_pages_per_us": 10.0,
    "reaper": True,
    "reaper_delay_us": {"dist": "exponential", "mean": 100.0},
    "reaper_lock_p": 0.9,
    "reaper_retry_us": 100000.0,
    "reaper_retries": 10,
    "reap_pages_per_us": 5.0,
    "reclaim_round_us": {"dist": "exponential", "mean": 500.0},
    "reclaim_yield_pages": 0,
    "reclaim_rounds": 4,
    "oom_lock_hold_us": 50.0,
    "jiffy_us": 4000.0,
    "exhaustion_floor": 0,
    "stall_us": 1_000_000.0,
    "horizon_us": 10_000_000.0,
}
MODEL_BYSTANDER_RATES = {"atomic": 5.0, "high": 0.5, "memalloc": 0.05, "kernel": 2.0}


@pytest.mark.parametrize("key", list(MODEL_DEFAULTS))
def test_default_matches_model(key):
    assert load_scenario()[key] == MODEL_DEFAULTS[key]


def test_default_bystanders_match_model():
    by = load_scenario()["bystanders"]
    for c, t in by.items():
        assert t["rate_per_ms"] == MODEL_BYSTANDER_RATES.get(c, 0.0), c
        assert t["order_probs"] == [1.0]
        assert t["hold_us"] == {"dist": "exponential", "mean": 500.0}
    assert set(MODEL_BYSTANDER_RATES) <= set(by)


def test_default_policies_and_name():
    sc = load_scenario()
    assert sc["policies"] == ["tif_memdie", "alloc_oom"]
    assert sc.name == "default" and sc.source is None


def test_default_toml_is_exactly_the_builtin_defaults():
    sc = load_scenario(CONFIGS / "default.toml")
    assert sc.params == load_scenario().params
    assert sc.name == "default"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
def test_each_config_loads(path):
    sc = load_scenario(path)
    assert sc.source == str(path)
    assert set(sc.params) == set(load_scenario().params)


def test_tetsuo_config_values():
    sc = load_scenario(CONFIGS / "tetsuo-1000-threads.toml")
    assert sc["threads"] == {"dist": "fixed", "value": 1000}
    assert sc["exit_allocs"] == {"dist": "poisson", "mean": 32.0}
    assert sc["class_probs"] == {"kernel": 0.25, "nofs": 0.7, "atomic": 0.05}
    assert sc.name == "tetsuo-1000-threads"


# --------------------------------------------------------------------------- bare numbers
# MODEL.md section 13: a bare number is the mean of an exponential, Poisson or
# geometric parameter and the fixed value of any other.
BARE = {
    "f0_frac": {"dist": "fixed", "value": 0.8},
    "threads": {"dist": "fixed", "value": 3},
    "mm_sharers": {"dist": "fixed", "value": 3},
    "rss_pages": {"dist": "fixed", "value": 3},
    "wake_us": {"dist": "exponential", "mean": 3.0},
    "exit_allocs": {"dist": "poisson", "mean": 3.0},
    "exit_gap_us": {"dist": "exponential", "mean": 3.0},
    "hold_us": {"dist": "exponential", "mean": 3.0},
    "reaper_delay_us": {"dist": "exponential", "mean": 3.0},
    "reclaim_round_us": {"dist": "exponential", "mean": 3.0},
}


def test_bare_number_table_covers_every_distribution_parameter():
    assert set(BARE) == {k for k, s in SPECS.items() if s.kind == "dist"}


@pytest.mark.parametrize("key", list(BARE))
def test_bare_number(key):
    value = 0.8 if key == "f0_frac" else 3
    assert load_scenario(**{key: value})[key] == BARE[key]


def test_bare_number_of_bystander_hold_is_exponential_mean():
    sc = load_scenario(overrides={"bystanders.high.hold_us": 250})
    assert sc["bystanders"]["high"]["hold_us"] == {"dist": "exponential", "mean": 250.0}


FAMILIES = {
    "fixed": ({"dist": "fixed", "value": 5}, {"dist": "fixed", "value": 5}),
    "exponential": ({"dist": "exponential", "mean": 5}, {"dist": "exponential", "mean": 5.0}),
    "poisson": ({"dist": "poisson", "mean": 5}, {"dist": "poisson", "mean": 5.0}),
    "geometric": ({"dist": "geometric", "mean": 5}, {"dist": "geometric", "mean": 5.0}),
    "uniform": ({"dist": "uniform", "low": 1, "high": 2.5}, {"dist": "uniform", "low": 1.0, "high": 2.5}),
    "lognormal": (
        {"dist": "lognormal", "median": 200, "sigma": 1},
        {"dist": "lognormal", "median": 200.0, "sigma": 1.0},
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_dist_family_parses(family, tmp_path):
    given, canonical = FAMILIES[family]
    assert load_scenario(wake_us=given)["wake_us"] == canonical
    # the same as an inline TOML table in a file
    body = ", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in given.items())
    f = tmp_path / "s.toml"
    f.write_text(f"wake_us = {{{body}}}\n")
    assert load_scenario(f)["wake_us"] == canonical


def test_probabilities_tables_and_lists():
    sc = load_scenario(class_probs={"nofs": 1.0}, order_probs=[0.5, 0.5, 0.0, 0.0])
    assert sc["class_probs"] == {"nofs": 1.0}  # a class left out has probability 0
    assert sc["order_probs"] == [0.5, 0.5]  # trailing zero orders are dropped
    sc = load_scenario(order_probs={"0": 0.25, "3": 0.75})
    assert sc["order_probs"] == [0.25, 0.0, 0.0, 0.75]
    sc = load_scenario(class_probs=[0.5, 0.5])  # a list in CLASSES order: kernel, nofs
    assert sc["class_probs"] == {"kernel": 0.5, "nofs": 0.5}


def test_other_value_forms():
    assert load_scenario(min_free_kbytes=8192)["min_free_kbytes"] == 8192
    assert load_scenario(reclaim_rounds=4.0)["reclaim_rounds"] == 4  # a whole float is an integer
    assert isinstance(load_scenario(reclaim_rounds=4.0)["reclaim_rounds"], int)
    assert load_scenario(memory_gib=1)["memory_gib"] == 1.0
    assert load_scenario(policies="v6")["policies"] == ["v6"]
    assert load_scenario(policy="fraction:0.25")["policies"] == ["fraction:0.25"]


# --------------------------------------------------------------------------- overrides
def test_keyword_and_dict_overrides():
    sc = load_scenario(None, {"threads": 8, "bystanders.atomic.rate_per_ms": 0}, victims=2)
    assert sc["threads"] == {"dist": "fixed", "value": 8}
    assert sc["victims"] == 2
    assert sc["bystanders"]["atomic"]["rate_per_ms"] == 0.0
    assert sc["bystanders"]["kernel"]["rate_per_ms"] == 2.0
    # a keyword beats the same key in overrides=
    assert load_scenario(overrides={"victims": 3}, victims=4)["victims"] == 4


def test_overrides_apply_on_top_of_a_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('name = "mine"\nthreads = 16\n[bystanders.atomic]\nrate_per_ms = 1.0\n[sweep]\nthreads = [1, 2]\n')
    sc = load_scenario(f, {"bystanders.atomic.hold_us": 10}, victims=2)
    assert sc.name == "mine" and sc.source == str(f)
    assert sc.extra == {"name": "mine", "sweep": {"threads": [1, 2]}}
    assert sc["threads"] == {"dist": "fixed", "value": 16} and sc["victims"] == 2
    assert sc["bystanders"]["atomic"]["rate_per_ms"] == 1.0
    assert sc["bystanders"]["atomic"]["hold_us"] == {"dist": "exponential", "mean": 10.0}


def test_overrides_do_not_change_the_callers_tables():
    table = {"atomic": {"rate_per_ms": 1.0}}
    over = {"bystanders": table, "bystanders.atomic.hold_us": 10}
    sc = load_scenario(overrides=over)
    assert table == {"atomic": {"rate_per_ms": 1.0}}
    assert sc["bystanders"]["atomic"] == {"rate_per_ms": 1.0, "order_probs": [1.0], "hold_us": {
        "dist": "exponential", "mean": 10.0}}  # fmt: skip
    # a read-only mapping is accepted too
    sc = load_scenario(overrides={"bystanders": MappingProxyType(table), "bystanders.high.rate_per_ms": 0})
    assert sc["bystanders"]["high"]["rate_per_ms"] == 0.0 and sc["bystanders"]["atomic"]["rate_per_ms"] == 1.0


def test_with_overrides():
    base = load_scenario(CONFIGS / "small-machine.toml")
    before = base.to_dict()
    new = base.with_overrides({"threads": 4}, **{"bystanders.kernel.rate_per_ms": 0.5, "victims": 2})
    assert isinstance(new, Scenario)
    assert base.to_dict() == before  # the original is untouched
    assert new.name == base.name and new.source == base.source
    assert new["threads"] == {"dist": "fixed", "value": 4} and new["victims"] == 2
    assert new["bystanders"]["kernel"]["rate_per_ms"] == 0.5
    assert new["memory_gib"] == 1.0  # the file's values stay
    unchanged = {k: v for k, v in new.params.items() if k not in ("threads", "victims", "bystanders")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("threads", "victims", "bystanders")}
    # canonical values resolve to themselves
    assert base.with_overrides().params == base.params
    assert resolve(base.params) == base.params


def test_parse_set():
    assert parse_set("threads=64") == ("threads", 64)
    assert parse_set(" reaper = false ") == ("reaper", False)
    assert parse_set('threads={dist="geometric", mean=8}') == ("threads", {"dist": "geometric", "mean": 8})
    assert parse_set("policies=fraction:0.5") == ("policies", "fraction:0.5")
    assert parse_set("order_probs=[0.5, 0.5]") == ("order_probs", [0.5, 0.5])
    assert parse_set('name="a=b"') == ("name", "a=b")  # splits at the first '=' only
    for bad in ("threads", "threads=[1,", "threads=", "threads=1 2"):
        with pytest.raises(DepletionError, match="threads"):
            parse_set(bad)


# --------------------------------------------------------------------------- bad input
# overrides -> a string the error message must contain
BAD = [
    ({"bogus_key": 1}, "bogus_key"),
    ({"threads": "many"}, "threads"),
    ({"reaper": 1}, "reaper"),
    ({"victims": 1.5}, "victims"),
    ({"anon_fraction": True}, "anon_fraction"),
    ({"min_free_kbytes": "lots"}, "min_free_kbytes"),
    ({"reclaim_rounds": 17}, "reclaim_rounds"),
    ({"reaper_lock_p": 1.5}, "reaper_lock_p"),
    ({"memory_gib": -1}, "memory_gib"),
    ({"horizon_us": float("inf")}, "horizon_us"),
    ({"f0_frac": float("nan")}, "f0_frac"),
    ({"policies": ["nope"]}, "nope"),
    ({"policies": ["fraction:1.5"]}, "fraction:1.5"),
    ({"policies": []}, "policies"),
    ({"threads": {"dist": "zipf", "mean": 3}}, "zipf"),
    ({"threads": {"dist": ["geometric"], "mean": 3}}, "threads"),
    ({"threads": {"dist": "uniform", "low": 2}}, "high"),
    ({"threads": {"dist": "geometric", "mean": 3, "sigma": 1}}, "sigma"),
    ({"threads": {"dist": "geometric", "mean": 0.5}}, "threads.mean"),
    ({"threads": {"dist": "uniform", "low": 5, "high": 2}}, "threads.high"),
    ({"wake_us": {"dist": "lognormal", "median": 0, "sigma": 1}}, "wake_us.median"),
    ({"wake_us": {"dist": "exponential", "mean": "x"}}, "wake_us.mean"),
    ({"order_probs": [0.5, 0.4]}, "order_probs"),
    ({"order_probs": [0.1] * 12}, "order_probs"),
    ({"order_probs": [1.5, -0.5]}, "order_probs"),
    ({"class_probs": {"kernel": 0.5}}, "class_probs"),
    ({"class_probs": {"foo": 1.0}}, "foo"),
    ({"class_probs": "kernel"}, "class_probs"),
    ({"bystanders": {"foo": {"rate_per_ms": 1}}}, "bystanders.foo"),
    ({"bystanders": 5}, "bystanders"),
    ({"bystanders": {"atomic": 5}}, "bystanders.atomic"),
    ({"bystanders.foo.rate_per_ms": 1}, "bystanders.foo"),
    ({"bystanders.atomic.speed": 1}, "bystanders.atomic.speed"),
    ({"bystanders.atomic.rate_per_ms": -1}, "bystanders.atomic.rate_per_ms"),
    ({"bystanders": 5, "bystanders.atomic.rate_per_ms": 0}, "bystanders"),
    ({"bystanders": {"atomic": 5}, "bystanders.atomic.rate_per_ms": 0}, "bystanders.atomic"),
    ({"foo.bar": 1}, "foo.bar"),
    ({1: 2}, "1"),
]


@pytest.mark.parametrize("over, name", BAD, ids=[str(b[0])[:60] for b in BAD])
def test_bad_override_names_the_key(over, name):
    with pytest.raises(DepletionError) as info:
        load_scenario(overrides=over)
    assert name in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(DepletionError) as info:
        load_scenario().with_overrides(over)
    assert name in str(info.value)


BAD_FILES = {
    "unknown-key": ("bogus_key = 1\n", "bogus_key"),
    "wrong-type": ('threads = "many"\n', "threads"),
    "out-of-range": ("reclaim_rounds = 17\n", "reclaim_rounds"),
    "unknown-bystander-class": ("[bystanders.foo]\nrate_per_ms = 1\n", "bystanders.foo"),
    "malformed": ("threads = \n", "{f}"),
    "binary": (b"\xff\xfe\x00\x81", "{f}"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_names_the_key_or_file(case, tmp_path):
    content, name = BAD_FILES[case]
    f = tmp_path / "bad.toml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DepletionError) as info:
        load_scenario(f)
    assert name.replace("{f}", str(f)) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DepletionError, match="no such scenario file"):
        load_scenario(tmp_path / "nowhere.toml")
    with pytest.raises(DepletionError, match="cannot read"):
        load_scenario(tmp_path)


def test_depletion_error_is_a_value_error():
    assert issubclass(DepletionError, ValueError)
