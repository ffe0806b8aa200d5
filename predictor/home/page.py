"""The home page's HTML: one self-contained page per server, built on demand; pure functions.

No build step and no external assets (it must work air-gapped in a cluster): the style and the
script are inline, and every link and request goes to this server. The data each form needs is
embedded as JSON beside it.
"""

from __future__ import annotations

from html import escape
from typing import Any

import orjson

from predictor.home.script import SCRIPT

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.8em 2em;display:flex;gap:2em;align-items:baseline}
header a{color:#9cc3ff}main{padding:1em 2em}section.model{background:#fff;border-radius:8px;
padding:1em 1.5em;margin-bottom:1.5em;box-shadow:0 1px 3px #0002}h2 .version{color:#667;
font-size:.7em}table{border-collapse:collapse;margin:.5em 0}th,td{text-align:left;
padding:.2em .8em .2em 0;vertical-align:top}td code{word-break:break-all}.grid{display:grid;
grid-template-columns:repeat(auto-fit,minmax(26em,1fr));gap:1em}form.try{display:grid;gap:.4em}
label.field{display:grid;grid-template-columns:10em 14em auto;gap:.6em;align-items:center}
.field-error,.error{color:#b00020}.bars{width:28em}.bar{position:relative;background:#eef;
margin:.2em 0;height:1.4em}.bar span{position:absolute;top:0;left:0;bottom:0;background:#6b8cff}
.bar em{position:relative;padding-left:.4em;font-style:normal}.label{font-size:1.3em}
pre{white-space:pre-wrap;word-break:break-all;background:#f0f1f4;padding:.5em}
form.try button{justify-self:start;padding:.3em 1.5em}
"""

LIVE_ROWS = (
    ("requests", "requests", "{:,}"),
    ("error_ratio", "error ratio", "{:.2%}"),
    ("p50_ms", "p50 latency", "{:.1f} ms"),
    ("p99_ms", "p99 latency", "{:.1f} ms"),
    ("rows_per_call", "rows per call", "{:.1f}"),
    ("shadow_agreement", "shadow agreement", "{:.1%}"),
)


def render_page(app: dict[str, str], cards: list[dict[str, Any]], docs_url: str | None) -> str:
    """The whole page: a header with links, then each model's card, live numbers and form."""
    links = '<a href="/metrics">/metrics</a>'
    if docs_url:
        links += f' <a href="{escape(docs_url)}">docs</a>'
    sections = "".join(_section(card) for card in cards) or "<p>no models</p>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>{escape(app['app'])}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(app['app'])} {escape(app['app_version'])}</h1>"
        f"<nav>{links}</nav></header><main>{sections}</main>"
        f"<script>{SCRIPT}</script></body></html>"
    )


def _section(card: dict[str, Any]) -> str:
    name = escape(card["name"])
    if not card.get("ready", True) or "version" not in card:
        return f"<section class='model' id='model-{name}'><h2>{name}</h2><p>not ready</p></section>"
    data = orjson.dumps(card).decode().replace("</", "<\\/")
    return (
        f"<section class='model' id='model-{name}' data-ready>"
        f"<h2>{name} <span class='version'>{escape(card['version'])}</span></h2>"
        f"<nav><a href='/v2/models/{name}'>/v2/models/{name}</a></nav>"
        f"<div class='grid'><div><h3>Model card</h3>{_card_table(card)}</div>"
        f"<div><h3>Live numbers</h3>{_live_table(card['live'])}</div></div>"
        f"<h3>Inputs</h3>{_inputs_table(card['inputs'])}"
        f"<h3>Outputs</h3><p class='outputs'>{escape(', '.join(card['outputs']))}"
        + _classes(card["classes"])
        + "</p><h3>Try it</h3><form class='try'></form><div class='result'></div>"
        f"<script type='application/json' class='model-data'>{data}</script></section>"
    )


def _classes(classes: list[Any] | None) -> str:
    if classes is None:
        return ""
    return f"; classes: <span class='classes'>{escape(', '.join(map(str, classes)))}</span>"


def _card_table(card: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = [
        ("versions", ", ".join(v["version"] for v in card["versions"])),
        ("sha256", card["sha256"]),
        ("source", card["source"]),
        ("engine", card["engine"]),
        ("task", card["task"]),
    ]
    if card["shadow_version"]:
        rows.append(("shadow", card["shadow_version"]))
    published = card.get("published")
    if published:
        rows.append(("published", f"{published['at']} by {published['by']}"))
        for key, value in sorted(published["training_data"].items()):
            rows.append((f"training data {key}", str(value)))
    shown = {"bundle_name", "bundle_version", "bundle_created_at", "bundle_created_by",
             "bundle_training_data_uri", "bundle_training_data_version"}  # fmt: skip
    rows += [(k.removeprefix("bundle_"), v) for k, v in sorted(card["lineage"].items())
             if k not in shown]  # fmt: skip
    rows += [(f"acceptance {k}", v) for k, v in sorted(card["acceptance"].items())]
    rows += [(f"{k} (serving)", v) for k, v in sorted(card["libraries"].items())]
    return _table(rows, "card")


def _inputs_table(inputs: list[dict[str, Any]]) -> str:
    head = "<tr><th>feature</th><th>type</th><th>categories</th><th>reference range</th></tr>"
    body = "".join(
        f"<tr data-feature='{escape(i['name'])}'><td>{escape(i['name'])}</td>"
        f"<td>{escape(i['type'])}</td>"
        f"<td>{escape(', '.join(map(str, i.get('categories', []))))}</td>"
        f"<td>{_range(i.get('range'))}</td></tr>"
        for i in inputs
    )
    return f"<table class='inputs'>{head}{body}</table>"


def _range(found: list[float] | None) -> str:
    return "" if not found else f"{found[0]:.4g} to {found[1]:.4g}"


def _live_table(live: dict[str, dict[str, Any]]) -> str:
    start, recent = live["since_start"], live["recent"]
    if recent is None:
        window = "last 5 min (collecting)"
    elif recent["seconds"] < 290:
        window = f"last {recent['seconds']} s"
    else:
        window = "last 5 min"
    rows = [f"<tr><th></th><th>since start</th><th>{window}</th></tr>"]
    for key, title, form in LIVE_ROWS:
        if key not in start:
            continue
        cells = "".join(
            f"<td>{_number(form, part.get(key)) if part is not None else ''}</td>"
            for part in (start, recent)
        )
        rows.append(f"<tr data-live='{key}'><th>{title}</th>{cells}</tr>")
    for key, title in (("class_shares", "class shares"), ("bandit_shares", "bandit shares")):
        if start.get(key):
            cells = "".join(
                f"<td>{_shares(part.get(key) or {}) if part is not None else ''}</td>"
                for part in (start, recent)
            )
            rows.append(f"<tr data-live='{key}'><th>{title}</th>{cells}</tr>")
    drift_rows = start.get("drift_rows")
    for feature, psi in (start.get("drift_psi") or {}).items():
        shown = (
            "n/a (no rows in the window yet)"
            if psi is None
            else f"{psi:.3f} over {drift_rows:,} rows"
        )
        rows.append(
            f"<tr data-live='drift'><th>drift PSI {escape(feature)}</th>"
            f"<td colspan='2'>{shown}</td></tr>"
        )
    return f"<table class='live'>{''.join(rows)}</table>"


def _number(form: str, value: Any) -> str:
    return "n/a" if value is None else escape(form.format(value))


def _shares(shares: dict[str, float]) -> str:
    return escape(", ".join(f"{k or '(none)'} {v:.0%}" for k, v in shares.items()))


def _table(rows: list[tuple[str, str]], kind: str) -> str:
    body = "".join(
        f"<tr><th>{escape(k)}</th><td><code>{escape(str(v))}</code></td></tr>" for k, v in rows
    )
    return f"<table class='{kind}'>{body}</table>"
