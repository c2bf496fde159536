"""Set up Django for a bench script run as ``python bench/NAME.py`` from the project root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
MODEL3_DIR = BASE_DIR.parent / "shared" / "data" / "model3-manual"


def setup() -> None:
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "manualqa.settings")
    import django

    django.setup()
