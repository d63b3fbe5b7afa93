"""config.toml: hosts, clusters, scenarios, targets and benchmark defaults ([defaults]:
scenarios/bench_defaults.py).

`load_config` turns the TOML file into frozen dataclasses or raises
`ConfigError` whose message names the file, the key and what is wrong, e.g.
``config.toml: scenarios.k8s-pod.launcher: must be one of local, ssh, k8s (got 'kube')``.
Callers print that one line and exit non-zero; nobody sees a traceback.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scenarios import limits
from scenarios.bench_defaults import BenchDefaults, parse_bench_defaults
from scenarios.builtin_config import BUILTIN_NAME, builtin_data, tomllib
from scenarios.limits import Range, shown
from scenarios.mps import MpsLayer, parse_mps


LAUNCHERS = ("local", "ssh", "k8s")
TARGET_KINDS = ("none", "k8s", "proxy", "hypervisor")
DEFAULT_TARGETS = {"k8s": 1.0, "proxy": 5.0, "hypervisor": 10.0}
CONFIG_ENV = "GPUBENCH_CONFIG"


class ConfigError(Exception):
    """A configuration problem, already phrased as one line for the user."""


@dataclass(frozen=True)
class HostConfig:
    name: str
    kind: str = "local"                   # local | ssh
    address: str | None = None            # ssh: host name or ~/.ssh/config alias
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts: str | None = None        # None: asyncssh's default (~/.ssh/known_hosts)
    trust_on_first_use: bool = False
    proxy_jump: str | None = None
    python: str = "python3"
    enabled: bool = True
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "default"
    image: str = "nvcr.io/nvidia/cuda:13.0.0-runtime-ubuntu24.04"
    api_url: str | None = None           # overrides kubeconfig (tests point this at the emulator)
    engine_delivery: str = "configmap"   # configmap | image
    pod_timeout_s: float = 300.0
    enabled: bool = True


@dataclass(frozen=True)
class ProxyLayer:
    preload: str | None = None           # path of the LD_PRELOAD library (on the host / node)
    env: dict[str, str] = field(default_factory=dict)
    host_path: str | None = None         # k8s: node folder holding the library (hostPath)
    mount_path: str = "/usr/local/vgpu"  # k8s: where that folder is mounted in the pod
    require_active: bool = True          # INVALID "proxy not active" when the library is not mapped


@dataclass(frozen=True)
class HypervisorLayer:
    runtime_class: str | None = None     # k8s runtimeClassName (kata, kata-qemu, xen, ...)
    require_detected: bool = True        # INVALID when the engine reports no hypervisor


@dataclass(frozen=True)
class ScenarioConfig:
    name: str
    title: str
    launcher: str                        # local | ssh | k8s
    host: str | None = None              # local/ssh: a [hosts.X] name
    cluster: str | None = None           # k8s: a [clusters.X] name
    target: str = "none"                 # none | k8s | proxy | hypervisor
    target_pct: float | None = None      # resolved from [targets] unless given
    baseline: str | None = None          # scenario compared against
    proxy: ProxyLayer | None = None
    hypervisor: HypervisorLayer | None = None
    legacy_file: str | None = None       # seed-results file name, for import/export
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict, ...] = ()
    gpus: int = 1                        # k8s: nvidia.com/gpu limit of the pod
    env: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    gpu_select: str | None = None        # local/ssh: "all", "0,2" or UUIDs: one engine per GPU
    gpus_sequential: bool = False        # with gpu_select: one GPU after the other
    mps: MpsLayer | None = None          # local/ssh: a private MPS daemon (scenarios/mps.py)


@dataclass(frozen=True)
class Config:
    path: Path | None
    data_dir: Path
    defaults: BenchDefaults
    targets: dict[str, float]
    hosts: dict[str, HostConfig]
    clusters: dict[str, ClusterConfig]
    scenarios: dict[str, ScenarioConfig]

    def enabled_scenarios(self) -> list[ScenarioConfig]:
        return [s for s in self.scenarios.values() if s.enabled]


class _Reader:
    """Typed access to one TOML table; every error names file and dotted key."""

    def __init__(self, file: str, table: dict, prefix: str):
        self.file, self.table, self.prefix = file, table, prefix
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> ConfigError:
        dotted = f"{self.prefix}.{key}" if self.prefix else key
        if not dotted.isprintable():  # a quoted TOML key may hold a newline: keep one line
            dotted = shown(dotted)
        return ConfigError(f"{self.file}: {dotted}: {problem}")

    def get(self, key: str, kind: type | tuple, default: Any = None, *, choices=None,
            bounds: Range | None = None) -> Any:
        """The value of `key` checked for type, choices and (numbers: required) bounds."""
        self.used.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True
            try:
                value = float(value)
            except OverflowError:  # past any float: stays an int, which the bounds refuse
                pass
        if not ok:
            names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise self.fail(key, f"must be {names} (got {shown(value)})")
        if isinstance(value, str):
            self.check_text(key, value)
        if choices is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)} (got {shown(value)})")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert bounds is not None, f"numeric key {key} needs bounds"
            if (problem := bounds.problem(value)) is not None:
                raise self.fail(key, problem)
        return value

    def check_text(self, key: str, value: str) -> None:
        # a NUL cannot be passed to a process (argv, environment) and no name or path has one
        if "\0" in value:
            raise self.fail(key, f"must not contain a NUL character (got {shown(value)})")

    def str_list(self, key: str, default: tuple = (), choices=None) -> tuple[str, ...]:
        value = self.get(key, list, None)
        if value is None:
            return tuple(default)
        for item in value:
            if not isinstance(item, str):
                raise self.fail(key, f"must be a list of strings (got {shown(item)})")
            self.check_text(key, item)
            if choices is not None and item not in choices:
                raise self.fail(key, f"unknown entry {item!r}; choose from {', '.join(choices)}")
        return tuple(value)

    def str_map(self, key: str, env: bool = False) -> dict[str, str]:
        """A table of strings (numbers are written as strings); `env`: its keys must be
        environment variable names (they reach `env NAME=value` and os.environ)."""
        value = self.get(key, dict, {})
        out = {}
        for k, v in value.items():
            if env and (problem := limits.env_name_problem(k)) is not None:
                raise self.fail(key, problem)
            self.check_text(key, k)
            where = f"{key}.{k}"
            if isinstance(v, float) and not math.isfinite(v):
                raise self.fail(where, f"must be a string or finite number (got {v!r})")
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise self.fail(where, f"must be a string or number (got {shown(v)})")
            self.check_text(where, str(v))
            out[str(k)] = str(v)
        return out

    def sub(self, key: str) -> "_Reader | None":
        value = self.get(key, dict, None)
        if value is None:
            return None
        return _Reader(self.file, value, f"{self.prefix}.{key}" if self.prefix else key)

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown key (check the spelling; see config.toml's comments)")


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a table"}


def _host(name: str, r: _Reader) -> HostConfig:
    kind = r.get("kind", str, "local", choices=("local", "ssh"))
    h = HostConfig(
        name=name, kind=kind,
        address=r.get("address", str), user=r.get("user", str),
        port=r.get("port", int, None, bounds=limits.PORT),
        identity_file=r.get("identity_file", str), known_hosts=r.get("known_hosts", str),
        trust_on_first_use=r.get("trust_on_first_use", bool, False),
        proxy_jump=r.get("proxy_jump", str), python=r.get("python", str, "python3"),
        enabled=r.get("enabled", bool, True), labels=r.str_list("labels"),
    )
    if kind == "ssh" and not h.address:
        raise r.fail("address", "is required for an ssh host")
    r.reject_unknown()
    return h


def _cluster(name: str, r: _Reader) -> ClusterConfig:
    base = ClusterConfig(name=name)
    c = ClusterConfig(
        name=name, kubeconfig=r.get("kubeconfig", str), context=r.get("context", str),
        namespace=r.get("namespace", str, base.namespace), image=r.get("image", str, base.image),
        api_url=_api_url(r),
        engine_delivery=r.get("engine_delivery", str, base.engine_delivery,
                              choices=("configmap", "image")),
        pod_timeout_s=r.get("pod_timeout_s", float, base.pod_timeout_s,
                            bounds=limits.POD_TIMEOUT_S),
        enabled=r.get("enabled", bool, True),
    )
    r.reject_unknown()
    return c


def _api_url(r: _Reader) -> str | None:
    url = r.get("api_url", str)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port               # ValueError when out of 0..65535 or not a number
    except ValueError as exc:
        raise r.fail("api_url", f"not a URL: {exc} (got {shown(url)})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise r.fail("api_url", f"must be an http(s)://host[:port] URL (got {shown(url)})")
    if port is not None and (problem := limits.PORT.problem(port)) is not None:
        raise r.fail("api_url", f"port {problem}")
    return url


def _scenario(name: str, r: _Reader, targets: dict[str, float]) -> ScenarioConfig:
    launcher = r.get("launcher", str, None, choices=LAUNCHERS)
    if launcher is None:
        raise r.fail("launcher", f"is required (one of {', '.join(LAUNCHERS)})")
    target = r.get("target", str, "none", choices=TARGET_KINDS)
    target_pct = r.get("target_pct", float, None, bounds=limits.TARGET_PCT)
    if target_pct is None and target != "none":
        target_pct = targets[target]
    proxy = hyper = None
    if (pr := r.sub("proxy")) is not None:
        proxy = ProxyLayer(preload=pr.get("preload", str), env=pr.str_map("env", env=True),
                           host_path=pr.get("host_path", str),
                           mount_path=pr.get("mount_path", str, ProxyLayer.mount_path),
                           require_active=pr.get("require_active", bool, True))
        pr.reject_unknown()
    if (hr := r.sub("hypervisor")) is not None:
        hyper = HypervisorLayer(runtime_class=hr.get("runtime_class", str),
                                require_detected=hr.get("require_detected", bool, True))
        hr.reject_unknown()
    tolerations = _tolerations(r)
    s = ScenarioConfig(
        name=name, title=r.get("title", str, name), launcher=launcher,
        host=r.get("host", str), cluster=r.get("cluster", str), target=target,
        target_pct=target_pct, baseline=r.get("baseline", str), proxy=proxy, hypervisor=hyper,
        legacy_file=r.get("legacy_file", str), node_selector=r.str_map("node_selector"),
        tolerations=tuple(tolerations), gpus=r.get("gpus", int, 1, bounds=limits.GPUS_PER_POD),
        env=r.str_map("env", env=True), enabled=r.get("enabled", bool, True),
        gpu_select=_gpu_select(r, launcher),
        gpus_sequential=r.get("gpus_sequential", bool, False), mps=parse_mps(r, launcher),
    )
    r.reject_unknown()
    return s


def _tolerations(r: _Reader) -> list[dict]:
    """Kubernetes tolerations, checked field by field (they go into the pod spec as given)."""
    out = []
    for i, t in enumerate(r.get("tolerations", list, [])):
        if not isinstance(t, dict):
            raise r.fail("tolerations", f"must be a list of tables (got {shown(t)})")
        tr = _Reader(r.file, t, f"{r.prefix}.tolerations[{i}]")
        for key in ("key", "operator", "value", "effect"):
            tr.get(key, str)
        tr.get("tolerationSeconds", int, None, bounds=limits.TOLERATION_SECONDS)
        tr.reject_unknown()
        out.append(dict(t))
    return out


def check_gpu_select(text: str) -> str:
    """'all', '0,2' or 'GPU-uuid,...' normalised; ValueError with the reason."""
    t = text.strip()
    if t.lower() == "all":
        return "all"
    items = [p.strip() for p in t.split(",")]
    if not t or any(not p for p in items):
        raise ValueError(f"must be \"all\", GPU indexes like \"0,2\" or GPU UUIDs (got {text!r})")
    if len({p.lower() for p in items}) != len(items):
        raise ValueError(f"names a GPU twice (got {text!r})")
    return ",".join(items)


def _gpu_select(r: _Reader, launcher: str) -> str | None:
    value = r.get("gpu_select", (str, list), None)
    if value is None:
        return None
    if launcher == "k8s":
        raise r.fail("gpu_select", "is for local and ssh scenarios (a k8s pod gets `gpus`)")
    if isinstance(value, list):
        if not value or any(isinstance(v, bool) or not isinstance(v, (str, int)) for v in value):
            raise r.fail("gpu_select", f"must be \"all\" or a list of GPU indexes/UUIDs "
                                       f"(got {value!r})")
        value = ",".join(str(v) for v in value)
    try:
        return check_gpu_select(value)
    except ValueError as exc:
        raise r.fail("gpu_select", str(exc)) from None


def _named_tables(root: _Reader, key: str) -> dict[str, _Reader]:
    section = root.sub(key)
    if section is None:
        return {}
    out = {}
    for name in section.table:
        if not limits.TABLE_NAME.fullmatch(name):
            raise section.fail(shown(name), "not a valid name (letters, digits, '.', '_' and "
                                            "'-', starting with a letter or digit; at most 64)")
        sub = section.sub(name)
        if sub is None:  # pragma: no cover - sub() only returns None for missing keys
            continue
        out[name] = sub
    return out


def parse_config(data: dict, file: str, base_dir: Path) -> Config:
    root = _Reader(file, data, "")
    defaults = parse_bench_defaults(root.sub("defaults"))
    targets = dict(DEFAULT_TARGETS)
    if (tr := root.sub("targets")) is not None:
        for kind in DEFAULT_TARGETS:
            targets[kind] = tr.get(kind, float, targets[kind], bounds=limits.TARGET_PCT)
        tr.reject_unknown()
    data_dir = Path("results/data")
    if (st := root.sub("store")) is not None:
        data_dir = Path(os.path.expanduser(st.get("data_dir", str, str(data_dir))))
        st.reject_unknown()
    if not data_dir.is_absolute():
        data_dir = base_dir / data_dir
    hosts = {n: _host(n, r) for n, r in _named_tables(root, "hosts").items()}
    hosts.setdefault("local", HostConfig(name="local"))
    clusters = {n: _cluster(n, r) for n, r in _named_tables(root, "clusters").items()}
    scenarios = {n: _scenario(n, r, targets) for n, r in _named_tables(root, "scenarios").items()}
    if not scenarios:
        scenarios["bare-metal"] = ScenarioConfig(name="bare-metal", title="Bare metal",
                                                 launcher="local", host="local")
    root.reject_unknown()
    for s in scenarios.values():
        where = f"{file}: scenarios.{s.name}"
        if s.launcher in ("local", "ssh"):
            host = s.host or "local"
            if host not in hosts:
                raise ConfigError(f"{where}.host: no host named {host!r} under [hosts]")
            if hosts[host].kind != s.launcher and not (s.launcher == "local" and host == "local"):
                raise ConfigError(f"{where}.host: host {host!r} is kind {hosts[host].kind!r}, "
                                  f"but the scenario's launcher is {s.launcher!r}")
        if s.launcher == "k8s" and (s.cluster is None or s.cluster not in clusters):
            raise ConfigError(f"{where}.cluster: no cluster named {s.cluster!r} under [clusters]")
        if s.baseline is not None and s.baseline not in scenarios:
            raise ConfigError(f"{where}.baseline: no scenario named {s.baseline!r}")
    return Config(path=None, data_dir=data_dir, defaults=defaults, targets=targets,
                  hosts=hosts, clusters=clusters, scenarios=scenarios)


def find_config(explicit: str | os.PathLike | None = None) -> Path | None:
    """--config, then $GPUBENCH_CONFIG, then ./config.toml, then ~/.config/gpubench/config.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    for candidate in (Path("config.toml"), Path.home() / ".config" / "gpubench" / "config.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load and validate; with no file anywhere, the built-in defaults (the five reference
    scenarios, only bare-metal enabled: scenarios/builtin_config.py)."""
    found = find_config(path)
    if found is None:
        return parse_config(builtin_data(), BUILTIN_NAME, Path.cwd())
    name = str(found)
    try:
        raw = found.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: {exc}") from None
    except ValueError as exc:  # an integer past Python's digit limit (int() refuses it)
        raise ConfigError(f"{name}: invalid TOML: {str(exc).split(':')[0]}") from None
    cfg = parse_config(data, name, found.resolve().parent)
    return Config(path=found, data_dir=cfg.data_dir, defaults=cfg.defaults, targets=cfg.targets,
                  hosts=cfg.hosts, clusters=cfg.clusters, scenarios=cfg.scenarios)
