"""A check run stores its proxy's env redacted (checks_proxy and the scenario details), with
run_checks' and checks_document's real code (probes and engines as in fixed_checks)."""
from __future__ import annotations

import json
from unittest import mock

from gpubench.checks.proxy import Limits, Proxy
from gpubench.checks.settings import Settings
from gpubench.checks.suite import checks_document, run_checks
from gpubench.checks import compute, contention, enforcement
from tests.checks.fixed_checks import MIB, _failed_engines, _fake_probe


def test_a_check_document_keeps_no_secret_of_the_proxy_env():
    proxy = Proxy("p", "/usr/local/vgpu/libvgpu.so",
                         {"GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES": str(64 * MIB),
                          "VGPU_LICENSE_TOKEN": "lic-hunter2"},
                         Limits(mem_bytes=64 * MIB))
    settings = Settings(backend="numpy-cpu", mem_step=8 * MIB)
    with mock.patch.object(enforcement, "run_probe", _fake_probe), \
            mock.patch.object(compute, "run_probe", _fake_probe), \
            mock.patch.object(contention, "_run_engines", _failed_engines):
        summary = run_checks(["memory"], proxy, settings, progress=lambda m: None)
    doc, _ = checks_document(summary, "p")
    assert "hunter2" not in json.dumps(doc) and "hunter2" not in json.dumps(summary, default=str)
    assert doc["checks_proxy"]["env"] == {"GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES": str(64 * MIB),
                                          "VGPU_LICENSE_TOKEN": "<redacted>"}
    assert doc["scenario"]["details"]["proxy"]["env"] == doc["checks_proxy"]["env"]
    assert proxy.env["VGPU_LICENSE_TOKEN"] == "lic-hunter2"   # the probes still get the value
