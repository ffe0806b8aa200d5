"""Pydantic's validation errors as one line that names each key and what it expected.

The settings, the analysis file and the bundle manifest are pydantic models; this is how their
problems read, wherever they are reported. It never repeats the value it was given.
"""

from __future__ import annotations

from pydantic import ValidationError


def describe_errors(error: ValidationError) -> str:
    """``key: expected ...`` for each problem, separated by semicolons."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"])
        if item["type"] == "value_error" and not where:
            problems.append(str(item.get("ctx", {}).get("error", item["msg"])))
        elif item["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key")
        elif item["type"] == "missing":
            problems.append(f"{where}: required, missing")
        elif item["type"] == "value_error":
            problems.append(f"{where}: {item.get('ctx', {}).get('error', item['msg'])}")
        else:
            problems.append(f"{where}: {item['msg'][:1].lower()}{item['msg'][1:]}")
    return "; ".join(problems)
