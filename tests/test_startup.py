"""`onestep --help`, `onestep info` and `import onestep.bitstream` never import torch (what makes them start fast;
the times are measured in benchmarks/startup.json, not here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "v1" / "ramp-64x96-normal.osc"

_CHECK = """
import sys
{body}
assert "torch" not in sys.modules, "torch was imported"
"""


def _run(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHECK.format(body=body)], capture_output=True, text=True, timeout=60)


def test_bitstream_and_info_do_not_import_torch() -> None:
    done = _run("import onestep.bitstream")
    assert done.returncode == 0, done.stderr
    done = _run(f"from onestep.cli import main\nassert main(['info', {str(FIXTURE)!r}, '--json']) == 0")
    assert done.returncode == 0, done.stderr
    assert '"model": "fixture-v1"' in done.stdout


def test_help_does_not_import_torch() -> None:
    done = _run("from onestep.cli import main\nassert main(['--help']) == 0")
    assert done.returncode == 0, done.stderr
    assert "compress" in done.stdout and "verify" in done.stdout
