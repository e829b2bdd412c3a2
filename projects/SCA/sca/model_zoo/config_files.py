"""Finds the YAML configs that ship with the package, from any working folder."""

from pathlib import Path

# Installed packages carry the configs in sca/model_zoo/configs (setup.py links or copies the
# repository's configs/ there); a source checkout also has them at the repository root.
_PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"
_SOURCE_CONFIGS = Path(__file__).resolve().parents[4] / "configs"


def configs_root() -> Path:
    for root in (_PACKAGE_CONFIGS, _SOURCE_CONFIGS):
        if (root / "Base-SCA.yaml").is_file():
            return root
    raise FileNotFoundError(
        f"SCA's configs are in neither {_PACKAGE_CONFIGS} nor {_SOURCE_CONFIGS}: reinstall the "
        "package (pip install -e . links them)"
    )


def list_configs() -> list[str]:
    """Every shipped config, as the names ``get_config_file`` takes (e.g. ``sca_vg.yaml``)."""
    root = configs_root()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))


def get_config_file(name: str) -> str:
    """The path of a shipped config: ``"sca_vg.yaml"``, ``"release/sca_gpt2_large_vg.yaml"``, or a
    name without folder or extension (``"sca_gpt2_large_vg"``)."""
    root = configs_root()
    candidates = [name, f"{name}.yaml", f"release/{name}", f"release/{name}.yaml"]
    for candidate in candidates:
        path = root / candidate
        if path.is_file():
            return str(path)
    raise RuntimeError(
        f"{name!r} is not a config of the SCA model zoo (looked in {root}); "
        f"available: {list_configs()}"
    )
