"""asyncssh's import through scenarios/ssh/asyncssh_import.py: cryptography's DSA deprecation (printed
by every import of asyncssh with cryptography 51) never reaches our users' stderr, and the filter
is narrow: any other warning still shows."""
from __future__ import annotations

import subprocess
import sys

from tests.support.sshd import REPO

OTHER_WARNINGS = """
import warnings
from cryptography.utils import CryptographyDeprecationWarning as W
warnings.warn("DSA is deprecated (from our own code)", W)
warnings.warn("something else is deprecated", W)
"""


def _stderr_of(code: str) -> str:
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_importing_the_ssh_launcher_prints_no_dsa_deprecation():
    for module in ("scenarios.ssh.launcher", "scenarios.ssh.lean", "scenarios.fleet_run.run"):
        assert "DSA is deprecated" not in _stderr_of(f"import {module}"), module


def test_the_filter_silences_only_asyncssh_s_dsa_warning():
    err = _stderr_of("import scenarios.ssh.launcher\n" + OTHER_WARNINGS)
    assert "DSA is deprecated (from our own code)" in err
    assert "something else is deprecated" in err
