"""Rows in, request bodies out; answers in, a table out: pure functions for ``predictor call``.

Rows are lists (features in order) or objects (features by name). CSV cells become numbers when
they read as numbers, text otherwise. A v2 request is one ``[N, F]`` FP64 tensor for numeric
lists, else one ``[N]`` tensor per feature (FP64 or BYTES), as the predictor decodes them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from predictor.errors import CallError

Row = list[Any] | dict[str, Any]


def rows_from_json(text: str) -> list[Row]:
    """``[[...], ...]``, ``[{...}, ...]``, or a v1 body ``{"instances": [...]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CallError(f"expected JSON rows, got text that does not parse ({e.msg})") from e
    if isinstance(data, dict) and "instances" in data:
        data = data["instances"]
    if not isinstance(data, list) or not data or not all(isinstance(r, list | dict) for r in data):
        raise CallError("expected a non-empty list of rows (lists or objects)")
    return data


def rows_from_csv(text: str) -> list[Row]:
    """A CSV with a header: one object per line, numbers where the cell reads as one."""
    reader = csv.DictReader(io.StringIO(text))
    rows: list[Row] = [{k: _cell(v) for k, v in line.items()} for line in reader]
    if not rows:
        raise CallError("the CSV has a header but no rows")
    return rows


def split_ids(rows: list[Row], column: str) -> tuple[list[Any], list[Row]]:
    """Each row's value of ``column``, and the rows without it (what the model is sent).

    Raises:
        CallError: the rows are not objects (lists have no column names), or one lacks it.
    """
    ids: list[Any] = []
    rest: list[Row] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise CallError("--id_column needs rows with named columns (a CSV, or JSON objects)")
        if column not in row:
            names = ", ".join(map(str, list(row)[:20]))
            raise CallError(f"--id_column: row {i} has no column {column!r}; it has: {names}")
        ids.append(row[column])
        rest.append({k: v for k, v in row.items() if k != column})
    return ids, rest


def _cell(value: str | None) -> Any:
    if value is None or value == "":
        return None
    try:
        return float(value) if any(c in value for c in ".eE") else int(value)
    except ValueError:
        return value


def v1_body(rows: list[Row], outputs: list[str]) -> dict[str, Any]:
    """A v1 ``:predict`` body."""
    body: dict[str, Any] = {"instances": rows}
    if outputs:
        body["parameters"] = {"outputs": outputs}
    return body


def v2_inputs(rows: list[Row]) -> list[dict[str, Any]]:
    """The v2 input tensors for ``rows`` (name, shape, datatype, data)."""
    if all(isinstance(r, list) for r in rows):
        width = {len(r) for r in rows if isinstance(r, list)}
        if len(width) != 1:
            raise CallError("every row must have the same number of features")
        flat = [v for r in rows for v in r]
        if all(_is_number(v) for v in flat):
            return [
                {
                    "name": "input-0",
                    "shape": [len(rows), width.pop()],
                    "datatype": "FP64",
                    "data": flat,
                }
            ]
        raise CallError("rows with text must name their features (objects, or a CSV header)")
    objects = [r for r in rows if isinstance(r, dict)]
    if len(objects) != len(rows):
        raise CallError("rows must be all lists or all objects")
    names = list(dict.fromkeys(k for r in objects for k in r))
    tensors = []
    for name in names:
        column = [r.get(name) for r in objects]
        numeric = all(_is_number(v) or v is None for v in column)
        tensors.append(
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": "FP64" if numeric else "BYTES",
                "data": [float("nan") if v is None else v for v in column]
                if numeric
                else ["" if v is None else str(v) for v in column],
            }
        )
    return tensors


def v2_body(rows: list[Row], outputs: list[str]) -> dict[str, Any]:
    """A v2 ``/infer`` body."""
    body: dict[str, Any] = {"inputs": v2_inputs(rows)}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def table_from_v1(answer: dict[str, Any], outputs: list[str]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a v1 answer: one column per output (per class for probabilities)."""
    names = outputs or ["predictions"]
    columns: list[tuple[str, list[Any]]] = []
    classes = answer.get("classes")
    for name in names:
        values = answer.get(name)
        if values is None:
            continue
        columns.extend(_columns(name, values, classes))
    return _rows(columns)


def table_from_v2(outputs: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of v2 outputs (each ``{name, shape, data}``), matrices split by column."""
    columns: list[tuple[str, list[Any]]] = []
    for output in outputs:
        shape, data = output["shape"], list(output["data"])
        values: list[Any] = data
        if len(shape) == 2:
            values = [data[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
        classes = class_labels((output.get("parameters") or {}).get("classes"))
        columns.extend(_columns(output["name"], values, classes))
    return _rows(columns)


def class_labels(parameter: Any) -> list[Any] | None:
    """The class labels a v2 output's ``classes`` parameter carries.

    The predictor sends them as a JSON-encoded list (a v2 parameter is a scalar); a list as
    such, or a plain comma-separated string from another server, is taken too.
    """
    if isinstance(parameter, list):
        return parameter
    if not isinstance(parameter, str):
        return None
    try:
        decoded = json.loads(parameter)
    except json.JSONDecodeError:
        return parameter.split(",")
    return decoded if isinstance(decoded, list) else [decoded]


def _columns(name: str, values: list[Any], classes: Any) -> list[tuple[str, list[Any]]]:
    if values and isinstance(values[0], list):
        width = len(values[0])
        labels = classes if isinstance(classes, list) and len(classes) == width else range(width)
        return [(f"{name}_{label}", [v[i] for v in values]) for i, label in enumerate(labels)]
    return [(name, values)]


def _rows(columns: list[tuple[str, list[Any]]]) -> tuple[list[str], list[list[Any]]]:
    if not columns:
        raise CallError("the answer holds none of the outputs asked for")
    header = [name for name, _ in columns]
    return header, [list(row) for row in zip(*(values for _, values in columns), strict=True)]


def render(header: list[str], rows: list[list[Any]], style: str) -> str:
    """The table as aligned text (``table``) or CSV (``csv``)."""
    if style == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue()
    cells = [header] + [[_text(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in cells
    )


def _text(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
