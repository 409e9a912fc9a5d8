"""polyloss_core must import no deep-learning framework (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "jaxlib", "flax", "optax")


def test_polyloss_core_imports_no_framework() -> None:
    code = (
        "import json, sys\n"
        "import polyloss_core, polyloss_core.reference, polyloss_core.series, polyloss_core.spec\n"
        "from polyloss_core import PolySpec, reference\n"
        "import numpy as np\n"
        "reference.softmax_poly_loss(np.zeros((2, 3)), np.array([0, 1]), PolySpec.poly1())\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
