"""The configuration gpubench has without a config.toml, and the commented file `gpubench init`
writes: both are `config_template.toml` (beside this module), so what runs without a file is
what the written file says. The repository's own config.toml is the same text (a test holds
them equal).

It knows the five reference scenarios of the seed's results (bare metal, K8s pod, bare metal +
GPU proxy, K8s + GPU proxy, K8s + hypervisor), the GPU proxy (HAMi-core) in three settings: no
limits (`bare-metal-proxy`), a memory limit (`-mem`), an SM limit (`-sm50`); only `bare-metal` is
enabled, the others are known, so that `import ... --scenario k8s-pod` and `@k8s-pod` work before
any cluster is set up.
"""
from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TEMPLATE = Path(__file__).with_name("config_template.toml")
BUILTIN_NAME = "<built-in defaults>"     # names the configuration in its error messages


def template_text() -> str:
    """The commented config.toml `gpubench init` writes."""
    return TEMPLATE.read_text(encoding="utf-8")


def builtin_data() -> dict:
    """The template as TOML data: the configuration without a file."""
    return tomllib.loads(template_text())
