"""Every package folder is installed: pyproject.toml lists each one (an unlisted one works from
a checkout and fails from `pip install .`)."""

from __future__ import annotations

import os
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_package_folder_is_listed_in_pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        config = tomllib.load(f)["tool"]["setuptools"]
    listed = set(config["packages"])
    renamed = {v: k for k, v in config["package-dir"].items()}  # cli -> landscape_cli
    found = set()
    for top in ("landscape", "cli"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files:
                rel = os.path.relpath(folder, ROOT).split(os.sep)
                rel[0] = renamed.get(rel[0], rel[0])
                found.add(".".join(rel))
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"
