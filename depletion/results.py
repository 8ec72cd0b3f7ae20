"""Results files: one tidy table per sweep, with its provenance, written atomically.

A results file holds one row per (point, policy, outcome) with the
estimate, its interval, the count and ``n``, the swept parameter values, and
one row per (point, policy pair, outcome) with the paired difference. The
metadata (resolved scenario, grid, seed, options, package versions and the
command line) travel inside the file:

* ``.csv`` (default): two ``#`` header lines (a magic line and the metadata
  as one JSON line), the table, and a ``# end`` trailer with the row count
  and a checksum, so a truncated file is recognised. ``pandas.read_csv(path,
  comment="#")`` opens it in one line.
* ``.parquet``: the same table, with the metadata in the schema's key-value
  metadata under ``b"depletion"`` (needs ``pyarrow``: ``pip install
  .[parquet]``). ``pandas.read_parquet(path)`` opens it.

Every write goes to a temporary file in the same directory, is flushed to
disk and then renamed over the target, so a reader (or a crash) never sees a
half-written file and nothing already on disk is lost.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depletion.errors import DepletionError

MAGIC = "# depletion-results 1"
FORMAT = "depletion-results"
FORMAT_VERSION = 1

#: columns after the swept parameters, in file order
STAT_COLUMNS = (
    "policy", "vs", "outcome", "kind", "estimate", "ci_low", "ci_high", "count", "n", "sd",
    "q50", "q50_low", "q50_high", "q90", "q90_low", "q90_high", "q99", "q99_low", "q99_high",
    "n11", "n10", "n01", "n00", "mcnemar_p", "stop",
)  # fmt: skip
INT_COLUMNS = frozenset({"point", "count", "n", "n11", "n10", "n01", "n00"})
STR_COLUMNS = frozenset({"policy", "vs", "outcome", "kind", "stop"})
KINDS = ("proportion", "mean", "paired_diff", "paired_mean_diff")


def columns(axis_names: Sequence[str]) -> list[str]:
    """The column names of a results table whose grid has ``axis_names``."""
    return ["point", *axis_names, *STAT_COLUMNS]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(v)
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def _csv_body(cols: Sequence[str], rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_results(path: str | Path, meta: dict, axis_names: Sequence[str], rows: Sequence[dict]) -> None:
    """Write a results table atomically (format from the suffix: ``.parquet`` or CSV).

    Parameters
    ----------
    path : str or Path
        Target file; replaced atomically.
    meta : dict
        JSON-able metadata (see :func:`depletion.sweep.run_sweep`).
    axis_names : sequence of str
        Swept parameter names (columns after ``point``).
    rows : sequence of dict
        Table rows keyed by column name; missing keys are empty.
    """
    p = Path(path)
    cols = columns(axis_names)
    meta = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION, "columns": cols}
    if p.suffix == ".parquet":
        _atomic_write(p, _parquet_bytes(meta, cols, rows))
        return
    body = _csv_body(cols, rows)
    digest = hashlib.sha256(body.encode()).hexdigest()
    text = (
        f"{MAGIC}\n# {json.dumps(meta, sort_keys=True, separators=(',', ':'))}\n{body}"
        f"# end rows={len(rows)} sha256={digest}\n"
    )
    _atomic_write(p, text.encode())


def _parquet_bytes(meta: dict, cols: Sequence[str], rows: Sequence[dict]) -> bytes:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DepletionError("a .parquet results file needs pyarrow: pip install 'depletion[parquet]'") from None
    arrays = []
    for c in cols:
        vals = [r.get(c) for r in rows]
        if c in INT_COLUMNS:
            arrays.append(pa.array([None if v is None else int(v) for v in vals], type=pa.int64()))
        elif c in STR_COLUMNS:
            arrays.append(pa.array([None if v is None else str(v) for v in vals], type=pa.string()))
        elif c in STAT_COLUMNS:
            arrays.append(pa.array([math.nan if v is None else float(v) for v in vals], type=pa.float64()))
        else:  # a swept parameter: numbers stay numbers, anything else is text
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                arrays.append(pa.array([float(v) for v in vals], type=pa.float64()))
            else:
                arrays.append(pa.array([_cell(v) for v in vals], type=pa.string()))
    schema_meta = {b"depletion": json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()}
    table = pa.Table.from_arrays(arrays, names=list(cols)).replace_schema_metadata(schema_meta)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _num(c: str, s: str, where: str) -> Any:
    if s == "":
        return None
    try:
        if c in INT_COLUMNS:
            return int(s)
        return float(s)
    except ValueError:
        raise DepletionError(f"{where}: column {c!r} holds {s!r}, not a number (corrupt results file)") from None


def read_results(path: str | Path) -> tuple[dict, list[dict]]:
    """Read a results file written by :func:`write_results`.

    Returns
    -------
    (dict, list of dict)
        The metadata and the rows (numbers as int/float, empty cells as
        ``None``; swept parameter values as in the metadata's grid).

    Raises
    ------
    DepletionError
        If the file is missing, unreadable, truncated, corrupt or not a
        depletion results file.
    """
    p = Path(path)
    if not p.exists():
        raise DepletionError(f"{p}: no such results file")
    if p.is_dir():
        raise DepletionError(f"{p}: is a directory, not a results file")
    if p.suffix == ".parquet":
        return _read_parquet(p)
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise DepletionError(f"{p}: cannot read results file ({e.__class__.__name__})") from None
    except UnicodeDecodeError:
        raise DepletionError(f"{p}: not a depletion results file (not UTF-8 text)") from None
    lines = text.split("\n")
    if not lines or lines[0] != MAGIC:
        raise DepletionError(f"{p}: not a depletion results file (no '{MAGIC}' first line)")
    if len(lines) < 3 or not lines[1].startswith("# "):
        raise DepletionError(f"{p}: truncated results file (no metadata line)")
    try:
        meta = json.loads(lines[1][2:])
    except json.JSONDecodeError:
        raise DepletionError(f"{p}: corrupt results file (metadata is not valid JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DepletionError(f"{p}: not a depletion results file (metadata format is not {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DepletionError(
            f"{p}: results format version {meta.get('format_version')!r}; this depletion reads {FORMAT_VERSION}"
        )
    end = [i for i, ln in enumerate(lines) if ln.startswith("# end ")]
    if not end:
        raise DepletionError(f"{p}: truncated results file (no '# end' trailer)")
    body = "\n".join(lines[2 : end[-1]]) + "\n"
    trailer = dict(kv.split("=", 1) for kv in lines[end[-1]][6:].split() if "=" in kv)
    if hashlib.sha256(body.encode()).hexdigest() != trailer.get("sha256"):
        raise DepletionError(f"{p}: corrupt results file (checksum mismatch: edited or damaged)")
    reader = csv.reader(io.StringIO(body))
    header = next(reader, None)
    if header != meta.get("columns"):
        raise DepletionError(f"{p}: corrupt results file (columns do not match the metadata)")
    axes = [a["name"] for a in meta.get("grid", [])]
    rows: list[dict] = []
    for ln, rec in enumerate(reader, start=4):
        if len(rec) != len(header):
            raise DepletionError(f"{p}: corrupt results file (line {ln} has {len(rec)} fields, not {len(header)})")
        rows.append(_typed_row(dict(zip(header, rec)), axes, meta, f"{p}:{ln}"))
    if str(len(rows)) != trailer.get("rows"):
        raise DepletionError(f"{p}: truncated results file ({len(rows)} rows, trailer says {trailer.get('rows')})")
    return meta, rows


def _typed_row(raw: dict, axes: Sequence[str], meta: dict, where: str) -> dict:
    out: dict[str, Any] = {}
    point = _num("point", raw["point"], where)
    values = meta.get("points", [])
    if not isinstance(point, int) or not 0 <= point < len(values):
        raise DepletionError(f"{where}: point {raw['point']!r} is not a point of the grid (corrupt results file)")
    out["point"] = point
    for i, a in enumerate(axes):
        out[a] = values[point][i]
    for c in STAT_COLUMNS:
        s = raw[c]
        out[c] = (s or None) if c in STR_COLUMNS else _num(c, s, where)
    return out


def _read_parquet(p: Path) -> tuple[dict, list[dict]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DepletionError("a .parquet results file needs pyarrow: pip install 'depletion[parquet]'") from None
    try:
        table = pq.read_table(p)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise DepletionError(f"{p}: corrupt or truncated results file ({e.__class__.__name__})") from None
    raw = (table.schema.metadata or {}).get(b"depletion")
    if raw is None:
        raise DepletionError(f"{p}: not a depletion results file (no depletion metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise DepletionError(f"{p}: corrupt results file (metadata is not valid JSON)") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise DepletionError(f"{p}: not a depletion results file of format version {FORMAT_VERSION}")
    if table.column_names != meta.get("columns"):
        raise DepletionError(f"{p}: corrupt results file (columns do not match the metadata)")
    axes = [a["name"] for a in meta.get("grid", [])]
    data = table.to_pydict()
    rows = []
    for i in range(table.num_rows):
        raw_row = {c: data[c][i] for c in table.column_names}
        row: dict[str, Any] = {"point": raw_row["point"]}
        if not isinstance(row["point"], int) or not 0 <= row["point"] < len(meta.get("points", [])):
            raise DepletionError(f"{p}: row {i} has a point outside the grid (corrupt results file)")
        for j, a in enumerate(axes):
            row[a] = meta["points"][row["point"]][j]
        for c in STAT_COLUMNS:
            v = raw_row[c]
            row[c] = None if (isinstance(v, float) and math.isnan(v)) else v
        rows.append(row)
    return meta, rows
