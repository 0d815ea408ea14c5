from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import rag  # noqa: F401  (offline environment first)
from rag.config import Settings

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "seeds" / "000_cff91d0424af9357.txt"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SEED, folder / SEED.name)
    return folder
