"""The command line describes itself and refuses bad arguments with a usage line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import demo
from bot.cli import main
from storage import open_database


def exits(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


@pytest.mark.parametrize("speed", ["0", "-1", "nan", "inf", "-inf", "0.0"])
def test_demo_speed_must_be_a_positive_finite_number(
    speed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = exits(["demo", f"--speed={speed}"], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        f"liqbot demo: error: argument --speed: {speed!r}: use a number above 0, e.g. 300"
    )


def test_demo_speed_that_is_not_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = exits(["demo", "--speed", "fast"], capsys)
    assert (code, err.splitlines()[-1]) == (
        2,
        "liqbot demo: error: argument --speed: 'fast' is not a number",
    )


def test_run_demo_itself_refuses_a_zero_speed() -> None:
    with pytest.raises(ValueError, match="demo speed must be a number above 0, not 0"):
        demo.run_demo(0)


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("run", "Collect liquidations (websockets), funding and open interest"),
        ("check-config", "Read the settings file and list every problem with its key"),
        ("status", "Read the database `run` writes (never creating or changing it)"),
    ],
)
def test_each_command_describes_itself(
    command: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = exits([command, "--help"], capsys)
    assert code == 0
    assert says in " ".join(out.split())
    assert "--config PATH" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(["--version"], capsys)[:2] == (0, "liqbot 0.1.0\n")


def test_config_is_accepted_before_and_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "elsewhere.db"
    open_database(database).close()
    config = tmp_path / "mine.toml"
    config.write_text(f'[storage]\npath = "{database}"\n')
    assert main(["status", "--config", str(config), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert main(["--config", str(config), "status", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert after["sources"] == before["sources"]
    assert main(["check-config", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"{config}: OK\n"
    # After the command wins over before it, as the later of two options does.
    assert (
        main(["--config", str(tmp_path / "missing.toml"), "check-config", "--config", str(config)])
        == 0
    )
    assert capsys.readouterr().out == f"{config}: OK\n"
