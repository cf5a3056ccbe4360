"""The distribution ships every subpackage and the shipped presets."""

import os
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_every_subpackage_is_listed():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for root, dirs, files in os.walk(os.path.join(REPO, "keras_unilmv2")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if "__init__.py" in files:
            found.add(os.path.relpath(root, REPO).replace(os.sep, "."))
    missing = found - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages"
    assert "keras_unilmv2.presets" in listed


def test_presets_folder_is_the_presets_package():
    setuptools = _pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"]["keras_unilmv2.presets"] == "presets"
    assert os.path.exists(os.path.join(REPO, "presets", "__init__.py"))


def test_torch_range_admits_the_local_cpu_wheel():
    # A range that torch 2.13.0 does not satisfy would pull a CUDA build.
    from packaging.specifiers import SpecifierSet

    extras = _pyproject()["project"]["optional-dependencies"]
    for name in ("torch", "test"):
        specs = [d for d in extras[name] if d.startswith("torch")]
        assert specs, name
        for spec in specs:
            assert "2.13.0" in SpecifierSet(spec[len("torch"):]), spec
