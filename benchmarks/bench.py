"""Benchmark script: the same report as `depletion bench`, saved as JSON.

Usage: .venv/bin/python benchmarks/bench.py [SCENARIO] [--episodes N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from depletion.bench import format_report, run_bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scenario", nargs="?", default="configs/default.toml")
    ap.add_argument("--episodes", type=int, default=200_000)
    ap.add_argument("--policy", action="append")
    ap.add_argument("--reference-episodes", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/latest.json"))
    a = ap.parse_args()
    r = run_bench(a.scenario, a.episodes, a.policy, a.reference_episodes)
    print(format_report(r))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(r, indent=2))
    tmp.replace(a.out)


if __name__ == "__main__":
    main()
