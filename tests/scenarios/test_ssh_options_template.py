"""Connection options copied from a template per host (no ssh config read): each host gets its own
name, port and host key judge, and everything else equals options built from scratch; with an
ssh config to read, no template is used. Key auth first (no "none" probe) only where it applies
(the refused-key path runs against a real sshd in test_ssh.py)."""
from __future__ import annotations

import asyncssh
import pytest

from scenarios.config import HostConfig
from scenarios.ssh import lean as ssh_lean
from scenarios.ssh.host_keys import HostKeyJudge
from scenarios.ssh.launcher import SshLauncher
from scenarios.ssh.options import preferred_ciphers


def _host(tmp_path, name: str, port: int | None, **extra) -> HostConfig:
    key = tmp_path / "id_ed25519"
    if not key.exists():
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    return HostConfig(name=name, kind="ssh", address=f"gpu-{name}", port=port, user="gpu",
                      identity_file=str(key), known_hosts=str(tmp_path / "known_hosts"), **extra)


def _compared(options) -> dict:
    skip = {"orig_host", "host", "port", "protocol_factory", "config", "kwargs", "waiter"}
    return {k: v for k, v in vars(options).items() if k not in skip}


async def test_each_host_gets_its_own_name_port_and_judge(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))           # no ~/.ssh/config
    assert ssh_lean.TEMPLATES_FIT
    ssh_lean.OPTION_TEMPLATES.clear()
    a = SshLauncher(_host(tmp_path, "a", 2201), ssh_config=())
    b = SshLauncher(_host(tmp_path, "b", None), ssh_config=())
    ja, jb = HostKeyJudge(a.host, tmp_path), HostKeyJudge(b.host, tmp_path)
    oa, ob = await a._connect_options(ja), await b._connect_options(jb)
    assert len(ssh_lean.OPTION_TEMPLATES) == 1              # one template, two copies
    assert (oa.host, oa.port, oa.protocol_factory()) == ("gpu-a", 2201, ja)
    assert (ob.host, ob.port, ob.protocol_factory()) == ("gpu-b", 22, jb)
    assert oa.username == ob.username == "gpu"
    fresh = asyncssh.SSHClientConnectionOptions(
        None, config=[], host="gpu-b", port=22, username="gpu", client_keys=ob.client_keys,
        known_hosts=ob.known_hosts, client_factory=lambda: jb, encryption_algs=preferred_ciphers(),
        connect_timeout=b.connect_timeout, keepalive_interval=b.keepalive_s, keepalive_count_max=4)
    assert _compared(ob) == _compared(fresh)
    assert (fresh.host, fresh.port) == (ob.host, ob.port)


async def test_no_template_when_an_ssh_config_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host 10.0.0.5\n  Port 2299\n")
    ssh_lean.OPTION_TEMPLATES.clear()
    launcher = SshLauncher(_host(tmp_path, "c", None), ssh_config=())
    launcher.host = HostConfig(name="c", kind="ssh", address="10.0.0.5", user="gpu",
                               identity_file=launcher.host.identity_file,
                               known_hosts=launcher.host.known_hosts)
    options = await launcher._connect_options(HostKeyJudge(launcher.host, tmp_path))
    assert options.port == 2299 and not ssh_lean.OPTION_TEMPLATES


@pytest.mark.parametrize("config", [[], ()])
def test_no_ssh_config(tmp_path, monkeypatch, config):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ssh_lean.no_ssh_config(config)
    assert not ssh_lean.no_ssh_config([str(tmp_path / "cfg")])


def test_key_auth_first_only_where_publickey_is_preferred():
    class Conn:
        def __init__(self, methods, preferred):
            self._auth_methods, self._preferred_auth = methods, preferred
    c = Conn([b"none"], [b"gssapi-keyex", b"publickey", b"password"])
    ssh_lean.key_auth_first(c)
    assert c._auth_methods == [b"publickey"]
    for methods, preferred in (([b"none"], [b"password"]), ([b"password"], [b"publickey"])):
        c = Conn(methods, preferred)
        ssh_lean.key_auth_first(c)
        assert c._auth_methods == methods
    ssh_lean.key_auth_first(object())          # other internals: left alone


async def test_judge_key_first_needs_an_identity_file_and_no_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    launcher = SshLauncher(_host(tmp_path, "d", 2202), ssh_config=())
    judge = HostKeyJudge(launcher.host, tmp_path)
    await launcher._connect_options(judge)
    assert judge.key_first
    cfg = tmp_path / "cfg"
    cfg.write_text("Host *\n  PreferredAuthentications password\n")
    launcher = SshLauncher(_host(tmp_path, "e", 2203), ssh_config=[str(cfg)])
    judge = HostKeyJudge(launcher.host, tmp_path)
    await launcher._connect_options(judge)
    assert not judge.key_first
