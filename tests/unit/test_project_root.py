"""The local stack finds the project's checkout: the one it was installed from, else the current
directory or one above it that holds the template."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecscp import project

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkout_the_package_came_from_is_the_project() -> None:
    assert project.find_project_root(Path("/")) == ROOT
    assert project.DEFAULT_TEMPLATE == ROOT / "template.yaml"


def test_an_installed_copy_uses_the_nearest_folder_above_that_holds_the_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "site-packages" / "ecscp" / "project.py"
    installed.parent.mkdir(parents=True)
    monkeypatch.setattr(project, "__file__", str(installed))
    checkout = tmp_path / "work" / "my-stack"
    (checkout / "dags" / "deep").mkdir(parents=True)
    (checkout / "template.yaml").write_text("Resources: {}\n")

    assert project.find_project_root(checkout / "dags" / "deep") == checkout
    # Nowhere a template: the folder the package was installed under (the error then names the
    # template missing there).
    assert project.find_project_root(tmp_path) == installed.parents[2]
