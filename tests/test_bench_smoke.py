"""The bench (issue #7) starts and prints its table. It asserts no figure: a
reduced subset of the quick run (no PostgreSQL, a small city, short phases)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "1,3,4,6"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "| fig | figure" in out and "machine:" in out and "database: sqlite" in out
    for figure in ("| 1 ", "| 3 ", "| 4 ", "| 6 "):
        assert figure in out, out
    assert "bare aiogram echo" in out
