"""tests/own_lines.py: our line survives, a dependency's warning record does not."""
from __future__ import annotations

from tests.support.own_lines import own_lines

# what importing asyncssh printed with cryptography 51.0.1, above a script's one-line error
ASYNCSSH_DSA = """\
/venv/lib/python3.11/site-packages/asyncssh/crypto/misc.py:32: CryptographyDeprecationWarning: \
DSA is deprecated and support will be removed in a future release. Use a more modern signature algorithm.
  PyCAPrivateKey = Union[dsa.DSAPrivateKey, rsa.RSAPrivateKey,
/venv/lib/python3.11/site-packages/asyncssh/crypto/dsa.py:38: CryptographyDeprecationWarning: \
DSA is deprecated and support will be removed in a future release. Use a more modern signature algorithm.
  def __init__(self, pyca_key: PyCAKey, params: dsa.DSAParameterNumbers,
"""


def test_warning_records_are_dropped_and_our_line_kept():
    ours = "fleet_scale: --pin on needs 2 or more CPUs (this process may use 1)"
    assert own_lines(ASYNCSSH_DSA + ours + "\n") == [ours]
    assert own_lines(ours + "\n" + ASYNCSSH_DSA) == [ours]
    assert own_lines("\n" + ours + "\n\n") == [ours]


def test_our_own_lines_are_all_kept():
    text = "config.toml: hosts.a.port: must be 1-65535 (got 0)\n  see README: Hosts\nsecond: x\n"
    assert own_lines(text) == ["config.toml: hosts.a.port: must be 1-65535 (got 0)",
                               "  see README: Hosts", "second: x"]
