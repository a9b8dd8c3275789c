"""Configuration: one EnvManager section, documented, read the same way by every door."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_env_manager.config import EnvManager, load_config


def test_every_trait_has_help_and_is_documented_in_the_readme():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    traits = EnvManager.class_traits(config=True)
    assert {
        "local_root",
        "shared_root",
        "channels",
        "pkgs_dir",
        "default_python",
        "kernel_packages",
        "pip_index_url",
        "pip_find_links",
        "pip_no_index",
        "max_concurrent_builds",
    } <= set(traits)
    for name, trait in traits.items():
        assert trait.help, name
        assert f"| `{name}` |" in readme, f"{name} is missing from the README's configuration table"


def test_defaults_follow_condarc_and_environment(monkeypatch, tmp_path):
    home = Path.home()
    (home / ".condarc").write_text("channels: [bioconda, defaults]\npkgs_dirs: [/data/pkgs]\n")
    monkeypatch.setenv("JUPYTER_ENV_MANAGER_SHARED_ROOT", str(tmp_path / "team"))
    settings = EnvManager()
    assert settings.channels == ["bioconda"]
    assert settings.pkgs_dir == "/data/pkgs"
    assert settings.shared_root == str(tmp_path / "team")
    assert settings.local_root == str(home / ".conda" / "envs")
    (home / ".condarc").unlink()
    monkeypatch.delenv("JUPYTER_ENV_MANAGER_SHARED_ROOT")
    settings = EnvManager()
    assert settings.channels == ["conda-forge"] and settings.shared_root is None


def test_load_config_reads_server_config_files(tmp_path):
    (tmp_path / "jupyter_server_config.json").write_text(
        json.dumps({"EnvManager": {"local_root": "/srv/a", "max_concurrent_builds": 3}})
    )
    (tmp_path / "jupyter_server_config.py").write_text("c.EnvManager.local_root = '/srv/b'\n")
    drop_ins = tmp_path / "jupyter_server_config.d"
    drop_ins.mkdir()
    (drop_ins / "team.json").write_text(json.dumps({"EnvManager": {"shared_root": "/srv/team"}}))
    settings = EnvManager(config=load_config([str(tmp_path)]))
    assert settings.local_root == "/srv/b"  # .py wins over .json, as in the server
    assert settings.shared_root == "/srv/team"
    assert settings.max_concurrent_builds == 3
