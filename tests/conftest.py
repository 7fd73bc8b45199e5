"""Shared test helpers: paths to the reference material and emulator-backed client factories."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "reference"
RECORDINGS = SHARED / "recordings"

needs_shared = pytest.mark.skipif(not RECORDINGS.is_dir(), reason="../shared/reference is not present")
