"""Shared fixtures: the repository's configuration and one demo root per test session.

The demo is generated once (it takes seconds) and copied where a test needs to change it, so the suite
stays fast while every end-to-end test runs on the realistic demo exports.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO_SEED = 20240601


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def config():
    from pipelines.config import load_config

    return load_config(REPO)


@pytest.fixture(scope="session")
def books(config):
    from pipelines.codebook import load_codebooks

    return load_codebooks(config.questionnaire_dir)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A demo root with exports only (not yet run)."""
    from pipelines.demo.build import make_demo

    root = tmp_path_factory.mktemp("demo")
    make_demo(root, seed=DEMO_SEED)
    return root


@pytest.fixture(scope="session")
def run_root(demo_root, tmp_path_factory) -> Path:
    """A copy of the demo root after a full `tongxing run` (keys come from a fixed test key)."""
    import os

    from pipelines.run import run

    root = tmp_path_factory.mktemp("run") / "root"
    shutil.copytree(demo_root, root)
    os.environ.setdefault("TONGXING_LINKAGE_KEY", "test-key-not-secret")
    run(root)
    return root


@pytest.fixture
def fresh_demo(demo_root, tmp_path) -> Path:
    """A private copy of the demo root a test may change."""
    root = tmp_path / "root"
    shutil.copytree(demo_root, root)
    return root
