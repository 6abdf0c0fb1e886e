"""What `pip install` of the server puts in site-packages: one top-level name, `permstore`.

Builds the wheel from a copy of the source folders (links kept as links, as git checks them out)
and reads its file list, so the check sees exactly what an install would unpack (ADR 0018).
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_FOLDERS = ("permcore", "schemas", "adapters", "streams", "services", "deploy")
SOURCES = ("pyproject.toml", "README.md", "permstore", *SERVER_FOLDERS)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The server's wheel, built from a copy of its sources."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir() and not path.is_symlink():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(path, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("permstore-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_has_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    packages = {top for top in tops if not top.endswith(".dist-info")}
    assert packages == {"permstore"}
    (info,) = tops - packages
    top_level = wheel.read(f"{info}/top_level.txt").decode().split()
    assert top_level == ["permstore"]


def test_the_wheel_holds_every_server_folder_and_its_data(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for expected in (
        "permstore/core/projector.py",
        "permstore/schemas/events.py",
        "permstore/schemas/event.schema.json",
        "permstore/schemas/cql/generation.cql",
        "permstore/adapters/cassandra_layout/reader.py",
        "permstore/streams/main.py",
        "permstore/services/api/main.py",
        "permstore/services/console/templates/base.html",
        "permstore/deploy/cassandra_roles.py",
    ):
        assert expected in names, f"{expected} is not in the wheel"


def test_the_command_points_into_the_namespace(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = (n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    assert parser["console_scripts"]["permstore"] == "permstore.services.cli:app"
