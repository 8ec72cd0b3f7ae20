# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring OOM reserve depletion with `depletion`
#
# When the OOM killer kills a process, its dying threads may dig into the
# memory reserves below the `min` watermark. Before Linux 4.14 the thread
# holding `TIF_MEMDIE` could take *all* of them (`tif_memdie`); since 4.14
# every thread of the victim may take *half* of them (`alloc_oom`). This
# notebook walks through the Python API: load a scenario, simulate the two
# policies, read the estimates, compare them on the same episodes, sweep a
# parameter, plot, and change a parameter.
#
# It runs top to bottom in well under two minutes on two cores. Set
# `DEPLETION_NB_EPISODES` to change the number of episodes per policy (the
# test suite runs it with a small number).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

import depletion
from depletion.display import enable_html, notebook_progress
from depletion.plot import plot_cdf_episodes, plot_curve, plot_diff, plot_timeline, subplots
from depletion.trace import trace_episodes

EPISODES = int(os.environ.get("DEPLETION_NB_EPISODES", "4000"))
ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "configs").is_dir())
enable_html()  # Result and SweepResult show as HTML tables with their intervals
print(f"depletion {depletion.__version__}, {EPISODES} episodes per policy")

# %% [markdown]
# ## 1. Load a scenario
#
# A scenario is a TOML file of the model's parameters; anything left out keeps
# its default. We start from the reproducer discussed on the list (1000 threads
# killed mid-write on a 2 GiB machine) and shrink it to 128 threads on 512 MiB
# so that it runs in seconds. Keyword overrides work like `--set` on the
# command line.

# %%
sc = depletion.load_scenario(ROOT / "configs" / "tetsuo-1000-threads.toml", threads=128, memory_gib=0.5)
for k in ("memory_gib", "threads", "in_allocator_frac", "exit_allocs", "reaper_lock_p", "class_probs"):
    print(f"{k:18s} {sc[k]}")

# %% [markdown]
# ## 2. Simulate two policies
#
# Both policies run the *same* episodes (common random numbers): every random
# draw is a function of the seed and the episode number, so the comparison
# below is paired. `keep_episodes=True` keeps the per-episode outcomes for the
# distribution plot further down.

# %%
res = depletion.simulate(
    sc, episodes=EPISODES, seed=1, policies=["tif_memdie", "alloc_oom"], keep_episodes=True, chunk_size=1000,
    progress=notebook_progress("simulate"),
)
display(res)

# %% [markdown]
# ## 3. Read the estimates
#
# Proportions come with a Wilson 95% interval and the count; numbers with the
# mean, its interval and quantiles. `to_dataframe()` gives a tidy table.

# %%
for pol in res.policies:
    ex, vf = res.policies[pol]["exhausted"], res.policies[pol]["victim_failed"]
    print(f"{pol:11s} reserves exhausted {ex['p']:.3f} [{ex['ci_low']:.3f}, {ex['ci_high']:.3f}]   "
          f"a victim allocation failed {vf['p']:.3f} [{vf['ci_low']:.3f}, {vf['ci_high']:.3f}]")

df = res.to_dataframe()
display(df[df.outcome.isin(["exhausted", "victim_failed", "min_free_frac", "resolve_us"])])

# %% [markdown]
# The trade-off the review argued about, in numbers: per-task `TIF_MEMDIE`
# lets the dying threads drain the reserves completely in a large share of
# episodes, `ALLOC_OOM` never lets them below half of `min`, and its victims
# fail allocations instead.
#
# ## 4. Compare them, paired
#
# Because both policies saw the same episodes, the difference gets Newcombe's
# paired interval and McNemar's exact test on the discordant episodes (those
# where only one policy had the outcome).

# %%
diff = res.compare("alloc_oom", "tif_memdie")
for outcome in ("exhausted", "victim_failed", "bystander_failed"):
    d = diff[outcome]
    print(f"{outcome:17s} alloc_oom - tif_memdie = {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
          f"  discordant {d['n10']}/{d['n01']}, McNemar p = {d['mcnemar_p']:.2g}")

# %% [markdown]
# ## 5. Sweep the number of threads
#
# `depletion.sweep` runs every point of a grid under every policy, again on
# common random numbers, and returns the same tidy rows a results file holds
# (`out="results/x.csv"` saves one; `depletion plot` draws it).

# %%
sw = depletion.sweep(
    sc, ["threads=8..256:log2"], episodes=max(EPISODES // 4, 50), seed=1, policies=["tif_memdie", "alloc_oom"],
    progress=notebook_progress("sweep"),
)
display(sw)

# %% [markdown]
# ## 6. Plot
#
# Each plot function takes an optional `ax` and returns the artists it drew;
# `depletion.plot.subplots` makes axes of paper width in the package's style.
# Bands are 95% intervals; where no episode had the outcome, a downward caret
# marks the interval's upper end (the estimate is 0, but only bounded).

# %%
fig, axs = subplots(1, 2, width="two", height=2.8)
plot_curve(sw, "exhausted", ax=axs[0])
plot_curve(sw, "victim_failed", ax=axs[1])
plt.show()

# %% [markdown]
# The paired difference of the two policies at each thread count, and the
# whole distribution of the lowest free memory (as a fraction of the `min`
# watermark W) from the per-episode data of section 2: under `alloc_oom` it
# stays near W/2 (grants stop at half of the reserves), under `tif_memdie` it
# drops to zero in the episodes where the reserves run out.

# %%
fig, axs = subplots(1, 2, width="two", height=2.8)
plot_diff(sw, "alloc_oom", "tif_memdie", "victim_failed", ax=axs[0])
plot_cdf_episodes(res, "min_free_frac", ax=axs[1])
plt.show()

# %% [markdown]
# ## 7. One episode's timeline
#
# Each episode is a pure function of `(seed, episode)`, so any episode of the
# runs above can be replayed with tracing: free pages over time against the
# `min` watermark and the floors below which the victims (and atomic
# requests) may not go, with the victims' failed requests, OOM-killer passes
# and exits. Take an episode in which `tif_memdie` exhausted the reserves and
# replay it under both policies.

# %%
ep = int(next((i for i, x in enumerate(res.episode_data["tif_memdie"]["exhausted"]) if x > 0), 0))
traces = [trace_episodes(sc, p, [ep], seed=1)[0] for p in ("tif_memdie", "alloc_oom")]
plot_timeline(traces)
plt.show()
for tr in traces:
    print(f"{tr.policy:11s} episode {ep}: lowest F {tr.free_pages.min()} pages (W = {tr.W}), "
          f"{int(tr.mask('victim_fail').sum())} failed victim requests")

# %% [markdown]
# ## 8. Change a parameter
#
# The writers in this scenario hold `mmap_lock` so often that the OOM
# reaper's trylock fails half the time (`reaper_lock_p = 0.5`). What if the
# reaper always got the lock?

# %%
res_reaper = depletion.simulate(
    sc.with_overrides(reaper_lock_p=1.0), episodes=EPISODES, seed=1, policies=["tif_memdie", "alloc_oom"],
    chunk_size=1000, progress=notebook_progress("simulate, reaper_lock_p=1"),
)
for pol in res_reaper.policies:
    before, after = res.policies[pol]["victim_failed"], res_reaper.policies[pol]["victim_failed"]
    ex = res_reaper.policies[pol]["exhausted"]
    print(f"{pol:11s} victim failed {before['p']:.3f} -> {after['p']:.4f} "
          f"[{after['ci_low']:.4f}, {after['ci_high']:.4f}], exhausted {ex['p']:.4f} (<= {ex['ci_high']:.4f})")

# %% [markdown]
# With a reaper that always gets the lock, the reserves hold under both
# policies and victims (almost) never fail: both failure modes come from
# episodes in which the reaper misses and the dying threads must live on the
# reserves until the exit path frees memory.
#
# Next: `depletion sweep configs/paper/*.toml` for the paper's grids,
# `depletion plot` for their figures (`make figures`), and
# `reserve-fraction.ipynb` for the question whether *half* of the reserves is
# the right amount.
