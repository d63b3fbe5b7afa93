"""asyncssh, imported here and only here, so that its dependency's noise never reaches our users.

cryptography deprecates DSA (51.0 here) and warns (CryptographyDeprecationWarning, a UserWarning, so
Python shows it) each time asyncssh touches its DSA classes, starting with asyncssh's own import:
five lines on stderr above a one-line error of a CLI or script that has nothing to do with DSA.
Only that warning, and only from asyncssh's modules, is silenced; every other warning still
shows. The filter must be in place before asyncssh is first imported: import asyncssh as
`from .asyncssh_import import asyncssh`.
"""
from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning

warnings.filterwarnings("ignore", message="DSA is deprecated",
                        category=CryptographyDeprecationWarning, module=r"asyncssh(\.|$)")

import asyncssh  # noqa: E402  (after the filter, on purpose)

__all__ = ["asyncssh"]
