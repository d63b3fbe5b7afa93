"""config.toml loading: valid files load; every mistake is one line naming file, key, problem."""
from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.builtin_config import template_text
from scenarios.bench_defaults import parse_size
from scenarios.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


REFERENCE = ["bare-metal", "k8s-pod", "bare-metal-proxy", "k8s-proxy", "k8s-hypervisor",
             "bare-metal-proxy-mem", "bare-metal-proxy-sm50"]
HAMI = "/usr/local/vgpu/libvgpu.so"


def test_shipped_config_loads_the_reference_scenarios_with_three_proxy_settings():
    cfg = load_config(ROOT / "config.toml")
    assert list(cfg.scenarios) == REFERENCE
    assert [s.name for s in cfg.enabled_scenarios()] == ["bare-metal"]
    assert cfg.scenarios["k8s-pod"].target_pct == 1.0
    assert cfg.scenarios["bare-metal-proxy"].target_pct == 5.0
    assert cfg.scenarios["k8s-hypervisor"].target_pct == 10.0
    assert cfg.scenarios["k8s-hypervisor"].hypervisor.runtime_class == "kata-qemu"
    # scenario 3 is HAMi-core in three settings, each with its own limits cache file
    proxies = {n: cfg.scenarios[n].proxy
               for n in ("bare-metal-proxy", "bare-metal-proxy-mem", "bare-metal-proxy-sm50")}
    assert {p.preload for p in proxies.values()} == {HAMI}
    assert "CUDA_DEVICE_MEMORY_LIMIT" not in proxies["bare-metal-proxy"].env
    assert "CUDA_DEVICE_SM_LIMIT" not in proxies["bare-metal-proxy"].env
    assert proxies["bare-metal-proxy-mem"].env["CUDA_DEVICE_MEMORY_LIMIT"] == "16g"
    assert "CUDA_DEVICE_SM_LIMIT" not in proxies["bare-metal-proxy-mem"].env
    sm = proxies["bare-metal-proxy-sm50"].env
    assert (sm["CUDA_DEVICE_SM_LIMIT"], sm["GPU_CORE_UTILIZATION_POLICY"]) == ("50", "force")
    caches = [p.env["CUDA_DEVICE_MEMORY_SHARED_CACHE"] for p in proxies.values()]
    assert len(set(caches)) == 3 and "/tmp/cudevshr.cache" not in caches
    assert not any(cfg.scenarios[n].enabled for n in proxies)
    assert cfg.data_dir == ROOT / "results" / "data"


def test_missing_file_gives_the_reference_scenarios_only_bare_metal_enabled(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GPUBENCH_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config()
    assert cfg.path is None and cfg.data_dir == tmp_path / "results" / "data"
    assert list(cfg.scenarios) == REFERENCE
    assert [s.name for s in cfg.enabled_scenarios()] == ["bare-metal"]
    assert [h.name for h in cfg.hosts.values() if h.enabled] == ["local"]


def test_init_template_is_the_shipped_config_and_the_built_in_default(tmp_path, monkeypatch):
    """What runs without a file, what `gpubench init` writes and the repository's config.toml
    are one configuration: the template cannot drift from either."""
    assert template_text() == (ROOT / "config.toml").read_text(encoding="utf-8")
    monkeypatch.chdir(ROOT)
    shipped = load_config(ROOT / "config.toml")
    monkeypatch.delenv("GPUBENCH_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    builtin = load_config()
    for part in ("scenarios", "hosts", "clusters", "targets", "defaults"):
        assert getattr(builtin, part) == getattr(shipped, part), part


@pytest.mark.parametrize("text, message", [
    ("[defaults]\nrepeats = 'three'\n", "config.toml: defaults.repeats: must be an integer (got 'three')"),
    ("[defaults]\nrepeats = 0\n", "config.toml: defaults.repeats: must be at least 1 (got 0)"),
    ("[defaults]\nbackend = 'tpu'\n", "config.toml: defaults.backend: must be one of auto, cupy, numpy-cpu (got 'tpu')"),
    ("[defaults]\nworkloads = ['roundtrip', 'bogus']\n", "config.toml: defaults.workloads: unknown entry 'bogus'"),
    ("[defaults]\nroundtrip_size = 'big'\n", "config.toml: defaults.roundtrip_size: not a size: 'big'"),
    ("[defaults]\ncpus = 'all'\n", "config.toml: defaults.cpus: must be a CPU list like \"4\" or \"4-7,9\" (got 'all')"),
    ("[defaults]\ncpus = 4\n", "config.toml: defaults.cpus: must be a string (got 4)"),
    ("[defaults]\nduraton_s = 1\n", "config.toml: defaults.duraton_s: unknown key"),
    ("[targets]\nproxy = 'five'\n", "config.toml: targets.proxy: must be a number (got 'five')"),
    ("[scenarios.x]\nlauncher = 'kube'\n", "config.toml: scenarios.x.launcher: must be one of local, ssh, k8s (got 'kube')"),
    ("[scenarios.x]\ntitle = 'x'\n", "config.toml: scenarios.x.launcher: is required"),
    ("[scenarios.x]\nlauncher = 'ssh'\nhost = 'nowhere'\n", "config.toml: scenarios.x.host: no host named 'nowhere'"),
    ("[scenarios.x]\nlauncher = 'k8s'\ncluster = 'c'\n", "config.toml: scenarios.x.cluster: no cluster named 'c'"),
    ("[scenarios.x]\nlauncher = 'local'\nbaseline = 'y'\n", "config.toml: scenarios.x.baseline: no scenario named 'y'"),
    ("[hosts.h]\nkind = 'ssh'\n", "config.toml: hosts.h.address: is required for an ssh host"),
    ("[hosts.h]\nkind = 'ssh'\naddress = 'a'\nport = -2\n", "config.toml: hosts.h.port: must be at least 1"),
    ("[scenarios.x]\nlauncher = 'local'\n[scenarios.x.proxy]\nenv = { A = true }\n", "config.toml: scenarios.x.proxy.env.A: must be a string or number"),
    ("[defaults\n", "config.toml: invalid TOML:"),
    ("hosts = 3\n", "config.toml: hosts: must be a table (got 3)"),
])
def test_bad_config_names_file_key_and_problem(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config("config.toml")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)
    assert path.exists()


def test_missing_explicit_file_and_non_utf8(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


@pytest.mark.parametrize("text, size", [("4KiB", 4096), ("64kib", 65536), ("1MiB", 1 << 20),
                                        ("256MiB", 256 << 20), ("512", 512), ("1.5KiB", 1536),
                                        # HAMi's limits (CUDA_DEVICE_MEMORY_LIMIT=4g)
                                        ("4g", 4 << 30), ("32M", 32 << 20), ("1t", 1 << 40)])
def test_parse_size(text, size):
    assert parse_size(text) == size
