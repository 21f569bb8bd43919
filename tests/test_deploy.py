"""deploy/: the systemd unit passes `systemd-analyze verify`, and the Dockerfile's build context
holds all of liqbot; both run `liqbot run` with the database on their volume.
(Docker itself cannot run here, so the image is checked through what it copies and runs.)"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).parent.parent
UNIT = ROOT / "deploy" / "liqbot.service"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def unit_service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_unit_runs_liqbot_run_with_state_and_config_directories(tmp_path: Path) -> None:
    service = unit_service()
    assert service["ExecStart"] == "/opt/liqbot/bin/liqbot run"
    assert service["WorkingDirectory"] == f"/var/lib/{service['StateDirectory']}"
    assert service["Environment"] == (
        f"LIQBOT_CONFIG=/etc/{service['ConfigurationDirectory']}/config.toml"
    )
    assert service["KillSignal"] == "SIGTERM"
    # A configuration error is exit 2, which the unit does not restart on.
    bad = tmp_path / "config.toml"
    bad.write_text("[storage]\npath = 3\n")
    assert main(["--config", str(bad), "check-config"]) == 2
    assert service["RestartPreventExitStatus"] == "2"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified as shipped, except that ExecStart points at this install's `liqbot` (verify
    insists that the program exists)."""
    installed = Path(sys.executable).parent / "liqbot"
    assert installed.exists()
    unit = tmp_path / "liqbot.service"
    unit.write_text(UNIT.read_text().replace("/opt/liqbot/bin/liqbot", str(installed)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0], line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_runs_liqbot_run_as_a_user_with_the_data_on_a_volume() -> None:
    steps = dockerfile_instructions()
    last = dict(steps)  # the last of each instruction
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert last["FROM"] == f"python:{python.removeprefix('>=')}-slim"
    assert json.loads(last["ENTRYPOINT"]) + json.loads(last["CMD"]) == ["liqbot", "run"]
    assert json.loads(last["VOLUME"]) == ["/data"]
    assert last["WORKDIR"] == "/data"  # where liqbot.db (and config.toml, if any) are
    assert last["USER"] == "liqbot"
    assert any("--home-dir /data" in args for step, args in steps if step == "RUN")


def test_the_image_build_context_holds_the_whole_package(tmp_path: Path) -> None:
    """Copy what the Dockerfile COPYs, as `docker build` would; the `pip install .` that follows
    must find every package, the readme and the package data that pyproject.toml names.
    (Building the wheel itself would need a newer setuptools from the network.)"""
    # Imported here, not at the top: setuptools costs every xdist worker 0.6 s to import while
    # collecting, and only this test uses it.
    from setuptools import find_packages

    context = tmp_path / "src"
    context.mkdir()
    for step, args in dockerfile_instructions():
        if step != "COPY":
            continue
        *sources, target = args.split()
        for source in sources:
            origin = ROOT / source
            assert origin.exists(), f"COPY {source}: no such path in the repository"
            destination = context / (Path(target) / origin.name if target.endswith("/") else target)
            if origin.is_dir():
                shutil.copytree(origin, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(origin, destination)
    pyproject = tomllib.loads((context / "pyproject.toml").read_text())
    setuptools_config = pyproject["tool"]["setuptools"]
    include = setuptools_config["packages"]["find"]["include"]
    packages = find_packages(str(ROOT), include=include)
    assert {"bot", "bot.venues", "handlers", "storage"} <= set(packages)
    assert find_packages(str(context), include=include) == packages
    assert (context / pyproject["project"]["readme"]).is_file()
    for package, patterns in setuptools_config["package-data"].items():
        for pattern in patterns:
            shipped = {p.relative_to(ROOT) for p in (ROOT / package).glob(pattern)}
            assert shipped, pattern
            assert {p.relative_to(context) for p in (context / package).glob(pattern)} == shipped
    for module in (ROOT / "bot").rglob("*.py"):
        assert (context / module.relative_to(ROOT)).is_file()
