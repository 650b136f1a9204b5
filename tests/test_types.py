"""The code type-checks under mypy --strict (the settings in pyproject.toml), as part of the tests."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def test_code_type_checks_strictly(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the config's `files` are relative to the repository
    stdout, stderr, status = api.run(["--config-file", "pyproject.toml"])
    assert status == 0, stdout + stderr
    assert stdout.startswith("Success: no issues found"), stdout
