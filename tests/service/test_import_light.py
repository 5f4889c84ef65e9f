"""The API must not drag in torch, optuna, scikit-learn or the worker code (nor
onnxruntime, which the first prediction imports)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_api_leaves_heavy_modules_out():
    code = (
        "import sys, service.main, service.cli; "
        "service.main.create_app; "
        "heavy = [m for m in ('torch', 'optuna', 'sklearn', 'workers', 'pandas', 'matplotlib', "
        "'onnxruntime') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
