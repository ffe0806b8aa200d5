"""The home page in a real browser: headless Chromium (Debian's) driven by its own driver.

Four kinds of model, each served by a real ``python -m predictor``: a numeric bundle, a
DataFrame pipeline with a string column (its categories from the bundle's sample), a text model
and a bandit of two arms. For each, the card is checked against ``/v2/models/NAME``, the form is
filled and sent and its label and probabilities compared with scikit-learn's, and a screenshot is
kept in ``test-output/home-page/``. A bad value shows the server's 400 message beside its field,
and the page asks nothing of any host but its own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from predictor.demo import make_trips, publish_demo_bundles
from predictor.publishing.publish import BundleSpec, publish
from tests.helpers import REPO_ROOT, RunningServer, ServerFactory, wait_until

pytestmark = pytest.mark.timeout(180)

SHOTS = REPO_ROOT / "test-output" / "home-page"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "chromium and chromium-driver are not installed; `make test-tools` installs them"
        )
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1800"):  # fmt: skip
        options.add_argument(argument)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def performance_log(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    """What the browser logged of the network since last asked (Chrome's performance log)."""
    entries: list[dict[str, Any]] = browser.get_log("performance")  # type: ignore[no-untyped-call]
    return entries


def open_page(browser: webdriver.Chrome, running: RunningServer, name: str) -> WebElement:
    performance_log(browser)  # forget what earlier pages asked for
    browser.get(f"{running.url}/")
    section = browser.find_element(By.ID, f"model-{name}")
    WebDriverWait(browser, 10).until(
        lambda _: section.find_elements(By.CSS_SELECTOR, "label.field")
    )
    return section


def card_of(section: WebElement) -> dict[str, Any]:
    return dict(
        json.loads(
            section.find_element(By.CSS_SELECTOR, "script.model-data").get_attribute("textContent")
            or ""
        )
    )


def check_card_against_metadata(section: WebElement, running: RunningServer, name: str) -> None:
    metadata = httpx.get(f"{running.url}/v2/models/{name}").json()
    card = card_of(section)
    assert [v["version"] for v in card["versions"]] == metadata["versions"]
    assert card["sha256"] == metadata["parameters"]["sha256"]
    assert card["outputs"] == [o["name"] for o in metadata["outputs"]]
    kinds = {"FP64": "number", "BYTES": "string"}
    if metadata["inputs"][0]["name"] == "text":
        assert [i["type"] for i in card["inputs"]] == ["text"]
    elif metadata["inputs"][0]["name"] == "input-0":  # one [-1, F] tensor: a row per column
        width = metadata["inputs"][0]["shape"][1]
        assert [i["type"] for i in card["inputs"]] == [
            kinds[metadata["inputs"][0]["datatype"]]
        ] * width
    else:
        assert [(i["name"], i["type"]) for i in card["inputs"]] == [
            (i["name"], kinds[i["datatype"]]) for i in metadata["inputs"]
        ]
    proba = [o for o in metadata["outputs"] if o["name"] == "predict_proba"]
    if proba:
        assert card["classes"] == proba[0]["parameters"]["classes"]
    shown = section.find_element(By.CSS_SELECTOR, "table.card").text
    assert metadata["parameters"]["sha256"] in shown
    assert shown.count(metadata["parameters"]["sha256"]) == 1  # the digest once
    rows = section.find_elements(By.CSS_SELECTOR, "table.inputs tr[data-feature]")
    assert [r.get_attribute("data-feature") for r in rows] == [i["name"] for i in card["inputs"]]


def fill(section: WebElement, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = section.find_element(By.CSS_SELECTOR, f"label.field[data-feature='{name}']")
        control = field.find_element(By.CSS_SELECTOR, "input, select, textarea")
        if control.tag_name == "select":
            control.find_element(By.CSS_SELECTOR, f"option[value='{value}']").click()
        else:
            control.clear()
            control.send_keys(str(value))


def submit(section: WebElement, browser: webdriver.Chrome) -> WebElement:
    result = section.find_element(By.CSS_SELECTOR, ".result")
    browser.execute_script("arguments[0].replaceChildren()", result)
    section.find_element(By.CSS_SELECTOR, "form.try button").click()
    WebDriverWait(browser, 15).until(
        lambda _: result.find_elements(By.CSS_SELECTOR, "p.label, p.error")
    )
    return result


def shown_answer(result: WebElement) -> tuple[str, dict[str, float]]:
    label = result.find_element(By.CSS_SELECTOR, "p.label").text
    bars = {
        str(b.get_attribute("data-class")): float(b.get_attribute("data-probability") or "nan")
        for b in result.find_elements(By.CSS_SELECTOR, ".bar")
    }
    return label, bars


def only_own_host(browser: webdriver.Chrome, running: RunningServer) -> None:
    asked = [
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in performance_log(browser)
        if '"Network.requestWillBeSent"' in entry["message"]
    ]
    assert asked, "the page asked for nothing at all"
    others = [u for u in asked if not u.startswith((running.url + "/", "data:"))]
    assert others == [], others


def screenshot(browser: webdriver.Chrome, kind: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{kind}.png"))
    assert (SHOTS / f"{kind}.png").stat().st_size > 10_000


def test_a_numeric_bundle(browser: webdriver.Chrome, server: ServerFactory, tmp_path: Path) -> None:
    (uri, _) = publish_demo_bundles(tmp_path / "registry", tmp_path / "work")
    running = server.start(uri, name="taxi")
    model = joblib.load(Path(uri) / "model.joblib")
    section = open_page(browser, running, "taxi")
    check_card_against_metadata(section, running, "taxi")
    card = card_of(section)
    assert card["published"]["training_data"] == {
        "uri": "synthetic://taxi-trips",
        "version": "seed-42",
    }
    assert card["acceptance"]["e2e"].startswith("passed")
    example = card["example"]
    rows = make_trips(300, seed=7)[0]
    assert example == rows.to_numpy().tolist()[0]  # the first acceptance row, prefilled

    label, bars = shown_answer(submit(section, browser))
    frame = pd.DataFrame([example], columns=rows.columns)
    assert label == str(model.predict(frame)[0])
    expected = dict(zip(map(str, model.classes_), model.predict_proba(frame)[0], strict=True))
    assert bars.keys() == expected.keys()
    np.testing.assert_allclose([bars[k] for k in expected], list(expected.values()), atol=1e-9)
    only_own_host(browser, running)
    screenshot(browser, "numeric-bundle")


def test_a_frame_pipeline_with_a_string_column(
    browser: webdriver.Chrome, server: ServerFactory, tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({
        "city": np.array(["paris", "lyon", "nice"])[rng.integers(0, 3, 300)],
        "rooms": rng.integers(1, 6, 300).astype(float),
        "area": rng.normal(60, 15, 300),
    })  # fmt: skip
    labels = np.where((frame["city"] == "paris") | (frame["area"] > 70), "high", "low")
    model = Pipeline([
        ("columns", ColumnTransformer([
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("num", StandardScaler(), ["rooms", "area"]),
        ])),
        ("model", LogisticRegression()),
    ]).fit(frame, labels)  # fmt: skip
    joblib.dump(model, tmp_path / "model.joblib")
    frame.to_csv(tmp_path / "sample.csv", index=False)
    uri = publish(
        BundleSpec(model_file=tmp_path / "model.joblib", name="flats", version="2.0.0",
                   sample_file=tmp_path / "sample.csv", created_by="test"),
        str(tmp_path / "registry"),
    )  # fmt: skip
    running = server.start(uri, name="flats")
    section = open_page(browser, running, "flats")
    check_card_against_metadata(section, running, "flats")
    city = section.find_element(By.CSS_SELECTOR, "label.field[data-feature='city'] select")
    assert sorted(str(o.get_attribute("value")) for o in city.find_elements(By.TAG_NAME, "option")) == [
        "lyon", "nice", "paris",
    ]  # fmt: skip
    ranges = section.find_element(By.CSS_SELECTOR, "table.inputs tr[data-feature='area']").text
    assert f"{frame['area'].min():.4g} to {frame['area'].max():.4g}" in ranges
    drift = [
        r.text for r in section.find_elements(By.CSS_SELECTOR, "table.live tr[data-live='drift']")
    ]
    assert drift == [
        f"drift PSI {f} n/a (no rows in the window yet)" for f in ("area", "city", "rooms")
    ]

    row = {"city": "nice", "rooms": 3.0, "area": 82.5}
    fill(section, row)
    label, bars = shown_answer(submit(section, browser))
    one = pd.DataFrame([row])
    assert label == model.predict(one)[0]
    np.testing.assert_allclose(
        [bars[c] for c in model.classes_], model.predict_proba(one)[0], atol=1e-9
    )

    fill(section, {"rooms": "three"})
    result = submit(section, browser)
    error = section.find_element(By.CSS_SELECTOR, "label.field[data-feature='rooms'] .field-error")
    assert error.text.startswith("input 'rooms': expected numbers"), error.text
    assert result.find_element(By.CSS_SELECTOR, "p.error").text.startswith("400: input 'rooms'")
    others = section.find_elements(
        By.CSS_SELECTOR, "label.field:not([data-feature='rooms']) .field-error"
    )
    assert all(e.text == "" for e in others)
    only_own_host(browser, running)
    screenshot(browser, "frame-pipeline")

    # the one row the form sent is in the drift window once the drift worker has summed it
    wait_until(
        lambda: 'predictor_drift_window_rows{model="flats",version="2.0.0"} 1.0'
        in httpx.get(f"{running.url}/metrics").text,
        timeout=20, what="the form's row in the drift window", every=0.1,
    )  # fmt: skip
    section = open_page(browser, running, "flats")
    live = section.find_elements(By.CSS_SELECTOR, "table.live tr[data-live='drift']")
    assert len(live) == 3 and all(r.text.endswith(" over 1 rows") for r in live), live


def test_a_text_model(browser: webdriver.Chrome, server: ServerFactory, tmp_path: Path) -> None:
    texts = ["great plot and acting", "boring and long", "loved it", "awful script"] * 30
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0] * 30)
    joblib.dump(model, tmp_path / "text.joblib")
    running = server.start(str(tmp_path / "text.joblib"), name="reviews")
    section = open_page(browser, running, "reviews")
    check_card_against_metadata(section, running, "reviews")
    fill(section, {"text": "loved the acting"})
    label, bars = shown_answer(submit(section, browser))
    assert label == str(model.predict(["loved the acting"])[0])
    np.testing.assert_allclose(
        [bars[str(c)] for c in model.classes_], model.predict_proba(["loved the acting"])[0],
        atol=1e-9,
    )  # fmt: skip
    request = section.find_element(By.CSS_SELECTOR, ".result details.request pre")
    sent = json.loads(request.get_attribute("textContent") or "")
    assert sent["instances"] == ["loved the acting"]  # v1 for a text model
    curl = section.find_element(By.CSS_SELECTOR, ".result details.curl pre")
    assert f"{running.url}/v1/models/reviews:predict" in (curl.get_attribute("textContent") or "")
    only_own_host(browser, running)
    screenshot(browser, "text-model")


def test_a_bandit_and_its_live_numbers(
    browser: webdriver.Chrome, server: ServerFactory, tmp_path: Path
) -> None:
    x = np.random.default_rng(5).normal(size=(200, 3))
    for arm, column in (("a", 0), ("b", 1)):
        joblib.dump(
            LogisticRegression().fit(x, (x[:, column] > 0).astype(int)), tmp_path / f"{arm}.joblib"
        )
    uris = f"{tmp_path / 'a.joblib'},{tmp_path / 'b.joblib'}"
    running = server.start(None, name="arms", args=["--bandit_model_uris", uris])
    with httpx.Client(base_url=running.url, timeout=10) as client:
        for i in range(40):
            reply = client.post("/v1/models/arms:predict", json={"instances": [x[i].tolist()]})
            assert reply.status_code == 200
        bad = client.post("/v1/models/arms:predict", json={"instances": [["a", "b", "c"]]})
        assert bad.status_code == 400
    section = open_page(browser, running, "arms")
    check_card_against_metadata(section, running, "arms")
    assert len(card_of(section)["versions"]) == 2
    live = {
        r.get_attribute("data-live"): r.find_elements(By.TAG_NAME, "td")[0].text
        for r in section.find_elements(By.CSS_SELECTOR, "table.live tr[data-live]")
    }
    assert live["requests"] == "41"
    assert live["error_ratio"] == "0.00%"  # a 400 is the caller's error, not the server's
    assert live["rows_per_call"] == "1.0"
    assert set(live["bandit_shares"].replace(",", " ").split()) >= {
        v["version"] for v in card_of(section)["versions"]
    }
    assert live["class_shares"]
    label, bars = shown_answer(submit(section, browser))
    assert label in ("0", "1") and set(bars) == {"0", "1"}
    only_own_host(browser, running)
    screenshot(browser, "bandit")
