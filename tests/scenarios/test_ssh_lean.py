"""scenarios/ssh/lean.py against real asyncssh: a client and server on 127.0.0.1 in this process.

Key auth sends its signature in the first request (the server sees one signed request, not a
query and then a signed one); no empty SSH_MSG_IGNORE goes before packets under AES-GCM, and
one still does under a CBC cipher; connections not marked keep asyncssh's own flow."""
from __future__ import annotations

import asyncssh
import pytest
from asyncssh.constants import MSG_IGNORE
from asyncssh.packet import String

from scenarios.ssh import lean as ssh_lean


class _Server(asyncssh.SSHServer):
    """Accepts one client key; records, per key auth request, whether it carried a signature."""

    def __init__(self, log: list[bool]):
        self.log = log

    def connection_made(self, conn):
        original = conn.validate_public_key

        async def validate(username, key_data, msg, signature):
            self.log.append(bool(signature))
            return await original(username, key_data, msg, signature)
        conn.validate_public_key = validate

    def begin_auth(self, username):
        return True

    def public_key_auth_supported(self):
        return True


class _KeyFirst(asyncssh.SSHClient):
    """What SshLauncher's host key judge does for a host with an identity file, no ssh config."""

    def connection_made(self, conn):
        ssh_lean.key_auth_first(conn)


@pytest.fixture
def sent(monkeypatch):
    """Packet types that reach asyncssh's own send_packet from a client (what it puts on the
    wire; the in-process server's packets are not counted)."""
    from asyncssh.connection import SSHConnection
    types: list[int] = []
    original = SSHConnection.send_packet

    def record(self, pkttype, *args, handler=None):
        if isinstance(self, asyncssh.SSHClientConnection):
            types.append(pkttype)
        return original(self, pkttype, *args, handler=handler)
    monkeypatch.setattr(SSHConnection, "send_packet", record)
    return types


@pytest.fixture
async def server(tmp_path):
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "authorized_keys").write_bytes(client_key.export_public_key())
    log: list[bool] = []
    srv = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key],
                                authorized_client_keys=str(tmp_path / "authorized_keys"),
                                encryption_algs=["aes128-gcm@openssh.com", "aes128-cbc"],
                                server_factory=lambda: _Server(log), process_factory=_echo)
    port = srv.sockets[0].getsockname()[1]
    yield port, client_key, log
    srv.close()
    await srv.wait_closed()


async def _echo(process):
    process.stdout.write("ok\n")
    process.exit(0)


async def _run(port, key, lean: bool, ciphers=("aes128-gcm@openssh.com",), **extra):
    options = asyncssh.SSHClientConnectionOptions(
        None, config=[], host="127.0.0.1", port=port, known_hosts=None, client_keys=[key],
        encryption_algs=list(ciphers), client_factory=_KeyFirst, **extra)
    if lean:
        conn = await ssh_lean.open_connection(options, [], sign_first=True)
    else:
        conn = await asyncssh.connect("127.0.0.1", port, options=options)
    async with conn:
        result = await conn.run("anything", check=True)
        assert result.stdout == "ok\n"
        return type(conn)


async def test_key_signed_in_the_first_request(server, sent):
    port, key, log = server
    assert await _run(port, key, lean=True) is ssh_lean.SignFirstConnection
    assert log == [True]              # one request, signed: no "would this key do?" query


async def test_plain_connection_keeps_asyncssh_flow(server, sent):
    port, key, log = server
    assert await _run(port, key, lean=False) is asyncssh.SSHClientConnection
    assert log == [False, True]       # asyncssh's query, then the signed request
    assert MSG_IGNORE in sent         # and its ignore packet before each encrypted one


async def test_lean_without_sign_first_queries_first(server, sent):
    port, key, log = server
    options = asyncssh.SSHClientConnectionOptions(
        None, config=[], host="127.0.0.1", port=port, known_hosts=None, client_keys=[key],
        client_factory=_KeyFirst)
    async with await ssh_lean.open_connection(options, []) as conn:
        assert type(conn) is ssh_lean.LeanConnection
    assert log == [False, True]


async def test_no_empty_ignore_under_gcm(server, sent):
    port, key, _log = server
    await _run(port, key, lean=True)
    assert sent and MSG_IGNORE not in sent


async def test_ignore_kept_under_cbc(server, sent):
    port, key, _log = server
    await _run(port, key, lean=True, ciphers=("aes128-cbc",))
    assert MSG_IGNORE in sent


async def test_lazy_keepalive_waits_for_silence_then_detects_a_dead_server(server, monkeypatch):
    """Packets postpone the keepalive (none is sent while the server talks); a server that
    stops answering is found after keepalive_interval x (count_max + 1), as asyncssh does."""
    import asyncio
    port, key, _log = server
    requests: list[float] = []
    original = ssh_lean.LeanConnection._keepalive_timer_callback
    options = asyncssh.SSHClientConnectionOptions(
        None, config=[], host="127.0.0.1", port=port, known_hosts=None, client_keys=[key],
        client_factory=_KeyFirst, keepalive_interval=0.3, keepalive_count_max=2)
    conn = await ssh_lean.open_connection(options, [], sign_first=True)
    loop = asyncio.get_running_loop()

    def fired(self):
        if loop.time() - self._last_received >= self._keepalive_interval:
            requests.append(loop.time())
        original(self)
    monkeypatch.setattr(ssh_lean.LeanConnection, "_keepalive_timer_callback", fired)
    t0 = loop.time()
    while loop.time() - t0 < 0.9:             # the server answers a command every 0.1 s
        await conn.run("anything", check=True)
        await asyncio.sleep(0.1)
    assert requests == []
    await asyncio.sleep(0.45)                  # silence: keepalives go out and are answered
    assert requests and not conn.is_closed()
    conn._transport.pause_reading()            # answers no longer arrive: a dead server
    lost = loop.create_future()
    conn._owner.connection_lost = lambda exc: lost.done() or lost.set_result(exc)
    exc = await asyncio.wait_for(lost, 3)
    assert "not responding to keepalive" in str(exc)


def test_only_empty_ignores_dropped(monkeypatch):
    class Conn(ssh_lean.LeanConnection):
        def __init__(self):                         # no socket: only send_packet is exercised
            self._enc_alg_cs = b"aes128-gcm@openssh.com"
    from asyncssh.connection import SSHConnection
    got = []
    monkeypatch.setattr(SSHConnection, "send_packet", lambda self, t, *a, handler=None: got.append((t, a)))
    c = Conn()
    c.send_packet(MSG_IGNORE, String(b""))
    c.send_packet(MSG_IGNORE, String(b"x"))       # a deliberate ignore: kept
    c.send_packet(94, String(b"data"))
    assert got == [(MSG_IGNORE, (String(b"x"),)), (94, (String(b"data"),))]


def test_a_connection_without_the_fields_turns_lean_off(monkeypatch):
    """An asyncssh whose connections lack a field LeanConnection reads gets plain ones."""
    import asyncio
    monkeypatch.setattr(ssh_lean, "_LEAN_FIELDS", ssh_lean._LEAN_FIELDS + ("_no_such_field",))
    monkeypatch.setattr(ssh_lean, "LEAN_FITS", True)
    loop = asyncio.new_event_loop()
    try:
        options = asyncssh.SSHClientConnectionOptions(None, config=[], host="h", username="u", known_hosts=None)
        options.waiter = loop.create_future()
        conn = ssh_lean._connection(loop, options, sign_first=True)
    finally:
        loop.close()
    assert type(conn) is asyncssh.SSHClientConnection and not ssh_lean.LEAN_FITS


def test_asyncssh_log_lines_still_reach_a_handler_that_wants_them(caplog):
    """The level is checked before asyncssh formats a line: dropped below the level, logged as
    before (arguments made text) at it."""
    from asyncssh.logging import logger
    assert ssh_lean._LEVEL_CHECK_FIRST

    class Loud:
        def __str__(self):
            raise AssertionError("formatted although nobody logs at this level")
    with caplog.at_level("WARNING", logger="asyncssh"):
        logger.info("quiet %s", [Loud()])          # asyncssh joins a list into text
    with caplog.at_level("DEBUG", logger="asyncssh"):
        logger.info("algorithms %s for %s", [b"aes128-gcm@openssh.com", "x"], ("127.0.0.1", 22))
    assert [r.getMessage() for r in caplog.records] == ["algorithms aes128-gcm@openssh.com,x for 127.0.0.1, port 22"]
