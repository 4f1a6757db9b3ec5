"""The Dockerfile, checked without a Docker engine: what the image runs, as whom, and what it holds.

No engine runs on our machines, so this reads the Dockerfile's instructions and builds the same
wheel the builder stage builds (its COPY sources in a fresh folder, its pip command as `pip
wheel --no-deps`), which takes seconds. What only a real build can show (the base image, the
healthcheck) is left to `docker build`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BUILD_TIMEOUT_S = 300  # a wheel build takes seconds; this only stops a hung index lookup


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_stages(text: str) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per stage (a stage starts at FROM)."""
    # Docker drops comment lines, even inside a continued instruction, then joins `\` lines.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    stages: list[list[Instruction]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"instruction before FROM: {line!r}"
        stages[-1].append(instruction)
    return stages


def last(stage: list[Instruction], keyword: str) -> str:
    found = [i.args for i in stage if i.keyword == keyword]
    assert found, f"no {keyword} in the stage"
    return found[-1]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.args):
                name, sep, value = word.partition("=")
                assert sep, f"use ENV name=value: {instruction.args!r}"
                env[name] = value
    return env


def copies(stage: list[Instruction]) -> list[list[str]]:
    """The stage's COPY instructions from the build context (not `--from=`), as source... dest."""
    return [shlex.split(i.args) for i in stage if i.keyword == "COPY" and not i.args.startswith("--")]


def pip_install(stage: list[Instruction]) -> list[str]:
    """The stage's one `RUN <venv>/bin/pip install …`, as words."""
    runs = [shlex.split(i.args) for i in stage if i.keyword == "RUN" and "pip install" in i.args]
    assert len(runs) == 1, runs
    words = runs[0]
    assert words[0].endswith("/bin/pip") and words[1] == "install", words
    return words


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    stages = parse_stages(DOCKERFILE.read_text())
    assert len(stages) == 2, "expected a builder stage and a runtime stage"
    return stages


@pytest.fixture(scope="module")
def wheel(stages: list[list[Instruction]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel the builder stage installs, built from only what that stage copies."""
    builder = stages[0]
    context = tmp_path_factory.mktemp("context")
    workdir = context / last(builder, "WORKDIR").lstrip("/")
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for *sources, dest in copies(builder):
        for source in sources:
            target = workdir / dest / (Path(source).name if dest.endswith("/") else "")
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=ignore)
            else:
                shutil.copy(ROOT / source, target)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *pip_install(builder)[2:], "--no-deps", "-w", str(out)],
        cwd=workdir, env={**os.environ, **env_of(builder)}, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    # The install stays quiet: package data is declared as packages (pyproject packages.find).
    assert "absent from the `packages` configuration" not in build.stdout + build.stderr
    (built,) = out.glob("mailslot-*.whl")
    with zipfile.ZipFile(built) as opened:
        yield opened


def test_the_entrypoint_is_the_installed_mailslot_script(stages: list[list[Instruction]]) -> None:
    builder, runtime = stages
    venv_bin = str(Path(pip_install(builder)[0]).parent)
    venv = str(Path(venv_bin).parent)
    assert f"--from={last(builder, 'FROM').split()[-1]} {venv} {venv}" in last(runtime, "COPY")
    assert env_of(runtime)["PATH"].split(":")[0] == venv_bin
    assert json.loads(last(runtime, "ENTRYPOINT")) == ["mailslot"]
    command = json.loads(last(runtime, "CMD"))
    assert command[0] == "serve"
    # The command the image runs exists, and `--host` reads the variable the image sets.
    mailslot = Path(sys.executable).parent / "mailslot"
    shown = subprocess.run([str(mailslot), *command, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "env MAILSLOT_HOST" in shown.stdout


def test_the_host_survives_an_overridden_command(stages: list[list[Instruction]]) -> None:
    """`docker run mailslot serve --workers 2` replaces CMD: the host must not live there."""
    runtime = stages[-1]
    assert env_of(runtime)["MAILSLOT_HOST"] == "0.0.0.0"
    assert "--host" not in json.loads(last(runtime, "CMD"))


def test_the_gateway_does_not_run_as_root(stages: list[list[Instruction]]) -> None:
    runtime = stages[-1]
    # The stage's last USER is the one the container runs as.
    assert last(runtime, "USER").split(":")[0] not in {"root", "0"}


def test_bench_stays_out_of_the_image(stages: list[list[Instruction]]) -> None:
    for stage in stages:
        for *sources, _dest in copies(stage):
            assert not any(Path(source).parts[0] in {"bench", "."} for source in sources), sources
    assert "bench" in (ROOT / ".dockerignore").read_text().split()


def test_the_wheel_holds_the_sql_and_the_static_files(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = {"storage/queries.sql"}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "storage" / "migrations").glob("*.sql")}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "gateway" / "static").rglob("*") if p.is_file()}
    assert len(expected) > 3
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.startswith(("bench/", "tests/")) or "__pycache__" in n]


def test_the_wheel_installs_the_mailslot_command(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[console_scripts]" in text
    assert "mailslot = gateway.cli:main" in text.splitlines()
