"""Test-wide settings: the data cache (fedfair/data/cache.py) lives in a fresh folder per session,
so tests neither read a user's cache nor leave theirs behind."""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("FEDFAIR_DATA_CACHE", tempfile.mkdtemp(prefix="fedfair-test-cache-"))
