"""Remote interpreters for the SSH tests, built from the system python (readable by any user)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.sshd import REMOTE_PYTHON

BASE_PYTHON = "/usr/bin/python3"


def numpy_only_python(folder: Path) -> tuple[str | None, str]:
    """(python, why not): a venv in `folder` without pip that sees the project's numpy (symlinked)
    but no cupy, no nvidia-ml-py; None and the reason when it cannot be made here."""
    if not os.path.exists(BASE_PYTHON):
        return None, f"no {BASE_PYTHON} to build a venv from"
    source = Path(subprocess.run([REMOTE_PYTHON, "-c", "import numpy, os; "
                                  "print(os.path.dirname(os.path.dirname(numpy.__file__)))"],
                                 capture_output=True, text=True).stdout.strip())
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for name in ("numpy", "numpy.libs"):
        if (source / name).exists():
            os.symlink(source / name, Path(site) / name)
    if subprocess.run([python, "-c", "import numpy"], capture_output=True).returncode != 0:
        return None, f"the project's numpy does not load in {BASE_PYTHON}"
    return python, ""
