"""The deployment files stay true to the code: every setting is documented and shipped.

``ensign/config.py`` is the only code that reads the environment, so the variables it names are
the complete list. The README's configuration table and ``docker/.env.example`` must name exactly
those; ``docker/compose.yaml`` must pass only documented variables; the image must copy every
package the project installs.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIABLE = r"[A-Z][A-Z0-9_]*"
# Variables compose.yaml and .env.example use for compose itself, not for Ensign.
COMPOSE_ONLY = {"COMPOSE_PROFILES", "BACKEND_PUBLISH", "GATEWAY_PUBLISH", "DELIVERY_PUBLISH"}


def config_variables() -> set[str]:
    source = (REPO / "ensign" / "config.py").read_text()
    code = source.split('"""', 2)[2]  # after the module docstring, which has its own table
    names = set(re.findall(rf'env\.\w+\(\s*"({VARIABLE})"', code))
    assert len(names) > 20, "the pattern no longer matches how config.py reads variables"
    return names


def readme_table_variables() -> set[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(rf"`({VARIABLE})`", line.split("|")[1]))
    return names


def env_example_variables() -> set[str]:
    text = (REPO / "docker" / ".env.example").read_text()
    # Active lines and commented-out ones ("# NAME=value") both document a variable.
    return set(re.findall(rf"^(?:# )?({VARIABLE})=", text, re.MULTILINE))


def test_readme_table_lists_exactly_the_variables_config_reads() -> None:
    assert readme_table_variables() == config_variables()


def test_env_example_lists_every_variable() -> None:
    assert env_example_variables() == config_variables() | COMPOSE_ONLY


def test_compose_uses_only_documented_variables() -> None:
    text = (REPO / "docker" / "compose.yaml").read_text()
    interpolated = set(re.findall(rf"\$\{{({VARIABLE})", text))
    passed = set(re.findall(rf"^\s+({VARIABLE}):", text, re.MULTILINE))
    assert interpolated <= config_variables() | COMPOSE_ONLY
    assert passed <= config_variables()
    # Each service's settings reach it: the ones config.py requires are all passed somewhere.
    for required in ("REDIS_URL", "ETH_RPC_URL", "GATEWAY_SIGNER_KEY", "JWT_SECRET", "SIGNING_PRIVATE_KEY"):
        assert required in passed


def test_image_copies_every_package_the_project_installs() -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    copied: set[str] = set()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied |= set(line.split()[1:-1])
    for source in copied:
        assert (REPO / source).exists(), source
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert not copied & ignored
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied
    assert {"pyproject.toml", "requirements.lock", pyproject["project"]["readme"]} <= copied


def test_image_runs_ensign_as_an_unprivileged_user() -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\S+)", final_stage, re.MULTILINE)
    assert user is not None and user.group(1).split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["ensign"]' in final_stage
