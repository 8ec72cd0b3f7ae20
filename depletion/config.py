"""Scenario files and parameters (MODEL.md sections 2-7 and 12).

A scenario is a flat set of named parameters (every MODEL.md parameter, same
snake_case name) plus the ``bystanders.CLASS`` tables. TOML files, ``--set
name=value`` on the command line and keyword overrides in the API all go
through :func:`resolve`, which validates every key, type and range and
returns a :class:`Scenario` whose ``params`` hold canonical values:
distributions as ``{"dist": ..., ...}`` tables, probabilities as full lists.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depletion.errors import DepletionError
from depletion.semantics import CLASSES, POLICY_NAMES, parse_policy

MAX_ORDER = 10  # orders 0..MAX_ORDER (MAX_ORDER of the buddy allocator)

DIST_PARAMS = {
    "fixed": ("value",),
    "exponential": ("mean",),
    "poisson": ("mean",),
    "geometric": ("mean",),
    "uniform": ("low", "high"),
    "lognormal": ("median", "sigma"),
}
DIST_KIND = {"fixed": 0, "exponential": 1, "poisson": 2, "geometric": 3, "uniform": 4, "lognormal": 5}


@dataclass(frozen=True)
class Spec:
    """Declared type and constraints of one parameter."""

    kind: str  # "int", "float", "bool", "dist", "orders", "classes", "policies", "int_or_auto"
    default: Any
    lo: float | None = None
    hi: float | None = None
    family: str = "fixed"  # for "dist": the family a bare number means
    integer: bool = False  # for "dist": values are rounded to integers
    doc: str = ""


def _exp(mean: float) -> dict:
    return {"dist": "exponential", "mean": mean}


SPECS: dict[str, Spec] = {
    "memory_gib": Spec("float", 16.0, 1 / 1024, 1 << 20, doc="managed memory of the zone, GiB"),
    "min_free_kbytes": Spec("int_or_auto", "auto", 128, 1 << 22, doc="min_free_kbytes; 'auto' derives it"),
    "watermark_scale_factor": Spec("int", 10, 1, 3000, doc="vm.watermark_scale_factor"),
    "highatomic_pages": Spec("int", 0, 0, 1 << 40, doc="nr_reserved_highatomic"),
    "f0_frac": Spec("dist", {"dist": "uniform", "low": 0.7, "high": 1.0}, 0, 1e6, "fixed", doc="F(0) / W"),
    "victims": Spec("int", 1, 1, 4096, doc="processes killed at once"),
    "threads": Spec("dist", {"dist": "fixed", "value": 32}, 1, 1e6, "fixed", True, doc="threads per process"),
    "mm_sharers": Spec("dist", {"dist": "fixed", "value": 0}, 0, 1e5, "fixed", True, doc="extra processes per mm"),
    "rss_pages": Spec("dist", {"dist": "fixed", "value": 262144}, 0, 1 << 40, "fixed", True, doc="pages of each mm"),
    "anon_fraction": Spec("float", 0.9, 0.0, 1.0, doc="reapable fraction of rss"),
    "in_allocator_frac": Spec("float", 0.25, 0.0, 1.0, doc="P(thread is mid-request at t=0)"),
    "wake_us": Spec("dist", _exp(200.0), 0, 1e12, "exponential", doc="time to start the exit path"),
    "exit_allocs": Spec(
        "dist", {"dist": "poisson", "mean": 4.0}, 0, 1e6, "poisson", True, doc="requests on the way out"
    ),
    "exit_gap_us": Spec("dist", _exp(50.0), 0, 1e12, "exponential", doc="gap between requests"),
    "order_probs": Spec("orders", [0.90, 0.07, 0.02, 0.01], doc="P(order k) of victim requests"),
    "class_probs": Spec(
        "classes", {"kernel": 0.6, "nofs": 0.3, "noio": 0.05, "atomic": 0.05}, doc="P(class) of victim requests"
    ),
    "hold_us": Spec("dist", _exp(1000.0), 0, 1e12, "exponential", doc="how long a victim allocation is held"),
    "stack_pages": Spec("int", 4, 0, 1 << 20, doc="pages freed at thread exit"),
    "teardown_pages_per_us": Spec("float", 10.0, 0.0, 1e9, doc="exit_mmap rate; 0 keeps the mm"),
    "reaper": Spec("bool", True, doc="false removes the OOM reaper"),
    "reaper_delay_us": Spec("dist", _exp(100.0), 0, 1e12, "exponential", doc="reaper start after the kill"),
    "reaper_lock_p": Spec("float", 0.9, 0.0, 1.0, doc="P(mmap lock taken) per attempt"),
    "reaper_retry_us": Spec("float", 100000.0, 0.0, 1e12, doc="sleep between attempts (HZ/10)"),
    "reaper_retries": Spec("int", 10, 1, 1000, doc="attempts per mm in all (MAX_OOM_REAP_RETRIES)"),
    "reap_pages_per_us": Spec("float", 5.0, 0.0, 1e9, doc="reap rate; 0 removes the reaper"),
    "reclaim_round_us": Spec("dist", _exp(500.0), 0, 1e12, "exponential", doc="one direct reclaim round"),
    "reclaim_yield_pages": Spec("int", 0, 0, 1 << 30, doc="pages one reclaim round frees"),
    "reclaim_rounds": Spec("int", 4, 0, 16, doc="no-progress rounds before the OOM path"),
    # > 0: a zero hold with reclaim_rounds = 0 would loop forever at one instant
    "oom_lock_hold_us": Spec("float", 50.0, 1e-3, 1e12, doc="oom_lock hold of one OOM pass"),
    "jiffy_us": Spec("float", 4000.0, 1.0, 1e7, doc="sleep when oom_lock is busy (HZ=250)"),
    "exhaustion_floor": Spec("int", 0, 0, 1 << 40, doc="F at or below which reserves are exhausted"),
    "stall_us": Spec("float", 1_000_000.0, 0.0, 1e15, doc="a longer wait is a stall"),
    "horizon_us": Spec("float", 10_000_000.0, 1.0, 1e15, doc="episode cut-off"),
    "policies": Spec("policies", ["tif_memdie", "alloc_oom"], doc="policies simulated by default"),
}

BYSTANDER_KEYS = ("rate_per_ms", "order_probs", "hold_us")
BYSTANDER_DEFAULT_RATES = {"atomic": 5.0, "high": 0.5, "memalloc": 0.05, "kernel": 2.0}
HOLD_SPEC = Spec("dist", _exp(500.0), 0, 1e12, "exponential")
RESERVED_KEYS = ("name", "description", "sweep", "tilt")


def default_bystanders() -> dict[str, dict]:
    """MODEL.md's bystander streams: one table per class."""
    return {
        c: {"rate_per_ms": BYSTANDER_DEFAULT_RATES.get(c, 0.0), "order_probs": [1.0], "hold_us": _exp(500.0)}
        for c in CLASSES
    }


@dataclass
class Scenario:
    """A validated scenario: every parameter resolved to a canonical value.

    Attributes
    ----------
    params : dict
        Parameter name to canonical value (see :func:`resolve`).
    name : str
        Scenario name (file stem, or ``default``).
    source : str or None
        File it came from.
    extra : dict
        Reserved tables passed through (``sweep``).
    """

    params: dict[str, Any]
    name: str = "default"
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def to_dict(self) -> dict[str, Any]:
        """The resolved parameters as plain JSON-able data."""
        return copy.deepcopy(self.params)

    def with_overrides(self, overrides: Mapping[str, Any] | None = None, **kw: Any) -> Scenario:
        """A new scenario with ``overrides`` (dotted names allowed) applied."""
        raw = copy.deepcopy(self.params)
        merged = dict(overrides or {})
        merged.update(kw)
        for k, v in merged.items():
            _set_dotted(raw, k, v)
        return Scenario(resolve(raw), self.name, self.source, dict(self.extra))


# --------------------------------------------------------------------------
def _type_name(v: Any) -> str:
    return type(v).__name__


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_range(key: str, v: float, lo: float | None, hi: float | None) -> None:
    if isinstance(v, float) and not math.isfinite(v):
        raise DepletionError(f"{key}: must be a finite number, got {v}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise DepletionError(f"{key}: {v} is out of range; allowed: {lo:g} to {hi:g}")


def _dist(key: str, v: Any, spec: Spec) -> dict:
    if _is_num(v):
        _check_range(key, float(v), spec.lo, spec.hi)
        if spec.family == "fixed":
            return {"dist": "fixed", "value": v}
        return {"dist": spec.family, "mean": float(v)}
    if not isinstance(v, Mapping):
        raise DepletionError(
            f"{key}: expected a number or an inline table like "
            f"{{dist = \"exponential\", mean = 200}}, got {_type_name(v)}"
        )
    name = v.get("dist")
    if not isinstance(name, str) or name not in DIST_PARAMS:
        raise DepletionError(f"{key}.dist: unknown distribution {name!r}; allowed: {', '.join(DIST_PARAMS)}")
    want = DIST_PARAMS[name]
    extra = set(v) - set(want) - {"dist"}
    if extra:
        raise DepletionError(
            f"{key}: unknown key(s) {', '.join(sorted(extra))} for dist {name!r}; allowed: {', '.join(want)}"
        )
    out: dict[str, Any] = {"dist": name}
    for p in want:
        if p not in v:
            raise DepletionError(f"{key}: dist {name!r} needs {', '.join(want)}; missing {p}")
        x = v[p]
        if not _is_num(x):
            raise DepletionError(f"{key}.{p}: expected a number, got {_type_name(x)}")
        out[p] = float(x) if name != "fixed" else x
    if name == "fixed":
        _check_range(key, float(out["value"]), spec.lo, spec.hi)
    elif name in ("exponential", "poisson"):
        _check_range(f"{key}.mean", out["mean"], 0.0, spec.hi)
    elif name == "geometric":
        _check_range(f"{key}.mean", out["mean"], 1.0, spec.hi)
    elif name == "uniform":
        _check_range(f"{key}.low", out["low"], spec.lo, spec.hi)
        _check_range(f"{key}.high", out["high"], out["low"], spec.hi)
    elif name == "lognormal":
        if not out["median"] > 0:
            raise DepletionError(f"{key}.median: must be > 0")
        _check_range(f"{key}.median", out["median"], 0.0, spec.hi)
        _check_range(f"{key}.sigma", out["sigma"], 0.0, 20.0)
    return out


def _probs(key: str, v: Any, names: tuple[str, ...] | None, maxlen: int) -> list[float]:
    """Validate probabilities given as a list or a table; return a full list."""
    if isinstance(v, Mapping):
        allowed = names if names is not None else tuple(str(i) for i in range(maxlen))
        out = [0.0] * len(allowed)
        for k, x in v.items():
            if str(k) not in allowed:
                raise DepletionError(f"{key}: unknown entry {k!r}; allowed: {', '.join(allowed)}")
            if not _is_num(x):
                raise DepletionError(f"{key}.{k}: expected a number, got {_type_name(x)}")
            out[allowed.index(str(k))] = float(x)
    elif isinstance(v, list):
        if not v or len(v) > maxlen:
            raise DepletionError(f"{key}: expected 1 to {maxlen} probabilities, got {len(v)}")
        if not all(_is_num(x) for x in v):
            raise DepletionError(f"{key}: expected a list of numbers")
        out = [float(x) for x in v]
    else:
        what = "a table of class = probability or a list" if names else "a list of probabilities by order"
        raise DepletionError(f"{key}: expected {what}, got {_type_name(v)}")
    if any(not math.isfinite(x) or x < 0 or x > 1 for x in out):
        raise DepletionError(f"{key}: each probability must be in [0, 1]")
    s = sum(out)
    if abs(s - 1.0) > 1e-9:
        raise DepletionError(f"{key}: probabilities must sum to 1, got {s:.12g}")
    if names is None:
        while len(out) > 1 and out[-1] == 0.0:
            out.pop()
    return out


def _value(key: str, v: Any, spec: Spec) -> Any:
    k = spec.kind
    if k == "bool":
        if not isinstance(v, bool):
            raise DepletionError(f"{key}: expected true or false, got {v!r}")
        return v
    if k == "int":
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise DepletionError(f"{key}: expected an integer, got {_type_name(v)} {v!r}")
        _check_range(key, v, spec.lo, spec.hi)
        return v
    if k == "int_or_auto":
        if v == "auto" or v is None:
            return "auto"
        if not isinstance(v, int) or isinstance(v, bool):
            raise DepletionError(f"{key}: expected an integer or \"auto\", got {v!r}")
        _check_range(key, v, spec.lo, spec.hi)
        return v
    if k == "float":
        if not _is_num(v):
            raise DepletionError(f"{key}: expected a number, got {_type_name(v)} {v!r}")
        _check_range(key, float(v), spec.lo, spec.hi)
        return float(v)
    if k == "dist":
        return _dist(key, v, spec)
    if k == "orders":
        return _probs(key, v, None, MAX_ORDER + 1)
    if k == "classes":
        lst = _probs(key, v, CLASSES, len(CLASSES))
        return {c: p for c, p in zip(CLASSES, lst + [0.0] * (len(CLASSES) - len(lst))) if p > 0}
    if k == "policies":
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v:
            raise DepletionError(
                f"{key}: expected a non-empty list of policy names; allowed: {', '.join(POLICY_NAMES)}"
            )
        for p in v:
            try:
                parse_policy(p)
            except ValueError as e:
                raise DepletionError(f"{key}: {e}") from None
        return list(v)
    raise AssertionError(k)


def _bystanders(v: Any) -> dict[str, dict]:
    out = default_bystanders()
    if not isinstance(v, Mapping):
        raise DepletionError(f"bystanders: expected a table of classes; allowed: {', '.join(CLASSES)}")
    for c, t in v.items():
        if c not in CLASSES:
            raise DepletionError(f"bystanders.{c}: unknown class; allowed: {', '.join(CLASSES)}")
        if not isinstance(t, Mapping):
            raise DepletionError(f"bystanders.{c}: expected a table with keys {', '.join(BYSTANDER_KEYS)}")
        for k, x in t.items():
            key = f"bystanders.{c}.{k}"
            if k == "rate_per_ms":
                if not _is_num(x):
                    raise DepletionError(f"{key}: expected a number, got {_type_name(x)}")
                _check_range(key, float(x), 0.0, 1e6)
                out[c][k] = float(x)
            elif k == "order_probs":
                out[c][k] = _probs(key, x, None, MAX_ORDER + 1)
            elif k == "hold_us":
                out[c][k] = _dist(key, x, HOLD_SPEC)
            else:
                raise DepletionError(f"{key}: unknown key; allowed: {', '.join(BYSTANDER_KEYS)}")
    return out


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate raw parameters and fill defaults.

    Parameters
    ----------
    raw : mapping
        Parameter names to values as TOML would give them. Unknown keys,
        wrong types and out-of-range values raise.

    Returns
    -------
    dict
        Every parameter, canonical.

    Raises
    ------
    DepletionError
        Naming the key and what is allowed.
    """
    out: dict[str, Any] = {}
    for key, v in raw.items():
        if key in RESERVED_KEYS:
            continue
        if key == "bystanders":
            out[key] = _bystanders(v)
            continue
        if key == "policy":
            key, v = "policies", [v] if isinstance(v, str) else v
        spec = SPECS.get(key)
        if spec is None:
            raise DepletionError(f"unknown parameter {key!r}; allowed: {', '.join(sorted([*SPECS, 'bystanders']))}")
        out[key] = _value(key, v, spec)
    for key, spec in SPECS.items():
        if key not in out:
            out[key] = _value(key, copy.deepcopy(spec.default), spec)
    if "bystanders" not in out:
        out["bystanders"] = default_bystanders()
    return {k: out[k] for k in [*SPECS, "bystanders"]}


def _set_dotted(d: dict, key: str, v: Any) -> None:
    if not isinstance(key, str):
        raise DepletionError(f"{key!r}: a parameter name must be a string")
    parts = key.split(".")
    if parts[0] == "bystanders" and len(parts) == 3:
        if parts[1] not in CLASSES:
            raise DepletionError(f"{key}: unknown class {parts[1]!r}; allowed: {', '.join(CLASSES)}")
        # the file (or an earlier override) may hold a non-table here: say so, do not crash
        tables = d.get("bystanders", {})
        if not isinstance(tables, Mapping):
            raise DepletionError(f"bystanders: expected a table of classes; allowed: {', '.join(CLASSES)}")
        table = tables.get(parts[1], {})
        if not isinstance(table, Mapping):
            raise DepletionError(f"bystanders.{parts[1]}: expected a table with keys {', '.join(BYSTANDER_KEYS)}")
        d["bystanders"] = {**tables, parts[1]: {**table, parts[2]: v}}
        return
    if len(parts) != 1:
        raise DepletionError(
            f"{key}: unknown parameter; dotted names are bystanders.CLASS.KEY "
            f"with KEY one of {', '.join(BYSTANDER_KEYS)}"
        )
    d[key] = v


def parse_set(item: str) -> tuple[str, Any]:
    """Parse one ``name=value`` (TOML value syntax) from the command line."""
    if "=" not in item:
        raise DepletionError(f"--set {item!r}: expected name=value (TOML value syntax)")
    name, txt = item.split("=", 1)
    name = name.strip()
    try:
        val = tomllib.loads(f"v = {txt.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        # a bare word such as alloc_oom: take it as a string
        t = txt.strip()
        if t and all(ch.isalnum() or ch in "_:.-" for ch in t):
            val = t
        else:
            raise DepletionError(
                f"--set {name}: {txt!r} is not a TOML value "
                f"(e.g. 64, 0.5, true, \"x\", {{dist = \"fixed\", value = 1}})"
            ) from None
    return name, val


def load_scenario(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, **kw: Any) -> Scenario:
    """Load and validate a scenario.

    Parameters
    ----------
    path : str or Path, optional
        A TOML scenario file; ``None`` gives MODEL.md's defaults.
    overrides : mapping, optional
        Parameter overrides by name (dotted for ``bystanders.CLASS.KEY``).
    **kw
        More overrides, as keyword arguments.

    Returns
    -------
    Scenario

    Raises
    ------
    DepletionError
        For a missing, unreadable or malformed file, or any bad parameter.
    """
    raw: dict[str, Any] = {}
    name, source, extra = "default", None, {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DepletionError(f"{p}: no such scenario file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise DepletionError(f"{p}: cannot read scenario file ({e.__class__.__name__})") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise DepletionError(f"{p}: malformed TOML: {e}") from None
        name, source = p.stem, str(p)
        extra = {k: raw[k] for k in RESERVED_KEYS if k in raw}
        if isinstance(raw.get("name"), str):
            name = raw["name"]
    merged = dict(overrides or {})
    merged.update(kw)
    for k, v in merged.items():
        _set_dotted(raw, k, v)
    return Scenario(resolve(raw), name, source, extra)
