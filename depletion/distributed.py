"""Running sweeps on a Dask cluster, with answers identical to the in-process run.

Work is split into tasks of (point, policy, chunk of episodes). Each task is
:func:`depletion.api.chunk_values`, a pure function of its arguments: the
counter-based streams make every episode a function of ``(seed, episode)``
alone, so a task gives the same arrays on any worker, and a task lost with a
dead worker is simply run again. The client feeds the chunks of each point
to a :class:`depletion.api.PointState` in episode order, whatever order they
finish in, so every estimate (and every byte of the results file) is the
same as in-process for any number of workers.

``dask[distributed]`` is an optional extra: ``pip install '.[distributed]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

from depletion.errors import DepletionError, check_whole

#: tasks kept in flight per worker thread: enough to hide latency, few enough to stop early
IN_FLIGHT_PER_THREAD = 3


def _dask():
    try:
        import distributed
    except ImportError:
        raise DepletionError(
            "--workers/--scheduler need Dask: pip install 'depletion[distributed]' (dask[distributed])"
        ) from None
    return distributed


@contextmanager
def cluster(workers: int | None = None, scheduler: str | None = None, client: Any = None):
    """A Dask client for a sweep, or ``None`` to run in-process.

    Parameters
    ----------
    workers : int, optional
        Start a local cluster of this many worker processes, one thread
        each, with ``NUMBA_NUM_THREADS`` set so that the workers' Numba
        thread pools share the CPUs instead of oversubscribing them.
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:8786``).
    client : distributed.Client, optional
        An existing client (the Python API); used as it is.

    Yields
    ------
    distributed.Client or None
    """
    given = sum(x is not None for x in (workers, scheduler, client))
    if given > 1:
        raise DepletionError("give one of --workers, --scheduler (or a client), not several")
    if client is not None or given == 0:
        yield client
        return
    dd = _dask()
    if workers is not None:
        check_whole("workers", workers, 1)
        import logging

        per = max(1, (os.cpu_count() or 1) // workers)
        lc = dd.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR, env={"NUMBA_NUM_THREADS": str(per)},
        )  # fmt: skip
        cl = dd.Client(lc)
        try:
            yield cl
        finally:
            cl.close()
            lc.close()
        return
    if not isinstance(scheduler, str) or not scheduler:
        raise DepletionError(f"scheduler: expected an address like tcp://host:8786, got {scheduler!r}")
    try:
        cl = dd.Client(scheduler, timeout="5s")
    except (OSError, TimeoutError) as e:
        raise DepletionError(f"scheduler: cannot connect to {scheduler} ({e.__class__.__name__})") from None
    try:
        yield cl
    finally:
        cl.close()


def run_points(
    client: Any,
    states: dict[int, Any],
    seed: int,
    on_done: Callable[[int, Any], None],
    on_chunk: Callable[[int], None] | None = None,
    order: Sequence[int] | None = None,
) -> None:
    """Run the chunks of several points on a Dask cluster; call ``on_done(i, PointRun)`` as each point finishes.

    Parameters
    ----------
    client : distributed.Client
    states : dict of int to PointState
        The points to run, by index.
    seed : int
    on_done : callable
        Called with the point index and its :class:`depletion.api.PointRun`.
    on_chunk : callable, optional
        Called with the number of episodes in each chunk as it is added.
    order : sequence of int, optional
        Submission order of the points (default: sorted).
    """
    from depletion.api import chunk_values

    dd = _dask()
    threads = max(1, sum(client.nthreads().values()))
    window = IN_FLIGHT_PER_THREAD * threads
    # every task, point by point, chunk by chunk, policy by policy: a lazy queue
    queue = (
        (i, start, n, p)
        for i in (order if order is not None else sorted(states))
        for start, n in states[i].chunks()
        for p in states[i].policies
    )
    futures: dict[Any, tuple[int, int, str]] = {}
    by_point: dict[int, set] = {i: set() for i in states}
    buffer: dict[int, dict[int, dict[str, Any]]] = {i: {} for i in states}
    ac = dd.as_completed()

    def submit_more() -> None:
        while len(futures) < window:
            task = next(queue, None)
            if task is None:
                return
            i, start, n, p = task
            if states[i].finished:
                continue
            st = states[i]
            # pure=True: the key is a hash of the arguments, so equal chunks are equal tasks
            f = client.submit(chunk_values, st.scenario.params, p, seed, start, n, st.bclasses, False, pure=True,
                              retries=3)  # fmt: skip
            futures[f] = (i, start, p)
            by_point[i].add(f)
            ac.add(f)

    submit_more()
    try:
        for f in ac:
            if f not in futures:
                continue
            i, start, p = futures.pop(f)
            by_point[i].discard(f)
            st = states[i]
            if st.finished:
                continue
            vals, _ = f.result()
            buffer[i].setdefault(start, {})[p] = vals
            # feed this point's chunks in episode order
            while st.done in buffer[i] and len(buffer[i][st.done]) == len(st.policies) and not st.finished:
                s0 = st.done
                chunk = buffer[i].pop(s0)
                st.add(s0, chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk[st.policies[0]]["exhausted"]) * len(st.policies))
            if st.finished:
                stale = list(by_point[i])
                for g in stale:
                    futures.pop(g, None)
                by_point[i].clear()
                buffer[i].clear()
                if stale:
                    client.cancel(stale)
                on_done(i, st.result())
            submit_more()
    finally:
        if futures:
            client.cancel(list(futures))
