"""Settings sections and the renamed deadline: what each layer is given, what old names still do."""

from __future__ import annotations

import pytest

from predictor.settings import Settings


def test_the_old_deadline_name_still_works_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTOR_GCS_DEADLINE_SECONDS", "7")
    with pytest.warns(FutureWarning, match="PREDICTOR_STORE_DEADLINE_SECONDS"):
        settings = Settings(model_uri="m.joblib")
    assert settings.store_deadline_seconds == 7
    assert settings.source.deadline_seconds == settings.shadow.deadline_seconds == 7
    monkeypatch.setenv("PREDICTOR_STORE_DEADLINE_SECONDS", "9")
    with pytest.warns(FutureWarning):
        both = Settings(model_uri="m.joblib")
    assert both.store_deadline_seconds == 9  # the new name wins


def test_each_layer_has_its_frozen_section() -> None:
    settings = Settings(
        model_uri="gs://b/m.joblib", batch_max_rows=8, shadow_url="http://127.0.0.1:9/p"
    )
    assert settings.source.location == "gs://b/m.joblib"
    assert settings.limits.batch_max_rows == 8
    assert settings.engines.native_engine is True
    assert settings.shadow.url == "http://127.0.0.1:9/p"
    assert settings.bandit.uris == ()
    with pytest.raises(AttributeError):
        settings.limits.batch_max_rows = 9  # type: ignore[misc]


def test_the_committed_settings_reference_is_the_one_the_code_makes() -> None:
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    done = subprocess.run(
        [sys.executable, "scripts/settings_reference.py", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    page = (REPO_ROOT / "docs" / "settings.md").read_text()
    assert (
        "| `PREDICTOR_STORE_DEADLINE_SECONDS` | `--store_deadline_seconds` | float | `120.0` |"
        in page
    )
