"""asyncssh, leaner per connection: what a fleet of thousands of hosts held by one process
saves on each handshake, packet and connection, with the same protocol, keys and checks.

Each function leaves a connection (or asyncssh) as it is when this asyncssh's internals differ
from what it expects, so a newer asyncssh costs speed, never correctness. Measured effects are
in benchmarks/fleet_scale.py's docstring.
"""
from __future__ import annotations

import asyncio
import copy
import inspect
import os
from typing import Any

from .asyncssh_import import asyncssh

from scenarios.aio import within


def key_auth_first(conn: Any) -> None:
    """Authenticate with the host's key at once instead of asking first with a "none" request
    what the server accepts (RFC 4252 lets the client skip it): one round trip, two packets
    less per connection, same key and same checks. If the server refuses the key, its answer
    lists its methods and asyncssh goes on from there as usual. Only for a host with an
    identity file and no ssh config (whose PreferredAuthentications would order methods);
    left alone if this asyncssh's internals differ."""
    if getattr(conn, "_auth_methods", None) == [b"none"] and \
            b"publickey" in (getattr(conn, "_preferred_auth", None) or ()):
        conn._auth_methods = [b"publickey"]


def _install_sign_first() -> bool:
    """Let a SignFirstConnection send its key's signature in the first publickey request,
    instead of asking whether the key would do (RFC 4252 section 7 lets the client skip that
    query): one round trip and two packets less per connection. Other connections keep
    asyncssh's own flow. False (nothing installed) if this asyncssh's internals differ."""
    try:
        from asyncssh import auth
        base = auth._client_auth_handlers[b"publickey"]
    except (ImportError, AttributeError, KeyError):
        return False
    if base.__name__ != "_ClientPublicKeyAuth" or not all(
            hasattr(base, a) for a in ("_start", "_send_signed_request")):
        return getattr(base, "_gpubench", False)

    class SignFirstPublicKeyAuth(base):    # type: ignore[misc, valid-type]
        _gpubench = True

        async def _start(self) -> None:
            if not getattr(self._conn, "gpubench_sign_first", False):
                return await super()._start()
            self._keypair = await self._conn.public_key_auth_requested()
            if self._keypair is None:
                self._conn.try_next_auth(next_method=True)
                return
            await self._send_signed_request()

    auth._client_auth_handlers[b"publickey"] = SignFirstPublicKeyAuth
    return True


_SIGN_FIRST_READY = _install_sign_first()


def _lean_fits() -> bool:
    """Whether SSHClientConnection has the methods LeanConnection overrides."""
    cls = asyncssh.SSHClientConnection
    return all(callable(getattr(cls, a, None)) for a in (
        "send_packet", "log_received_packet", "log_sent_packet", "_reset_keepalive_timer",
        "_keepalive_timer_callback"))


try:
    from asyncssh.constants import MSG_IGNORE
    from asyncssh.logging import SSHLogger
    from asyncssh.packet import String
    _EMPTY_IGNORE: tuple[bytes, ...] = (String(b""),)
except ImportError:
    SSHLogger = None        # type: ignore[assignment,misc]
LEAN_FITS = SSHLogger is not None and _lean_fits() and \
    isinstance(getattr(SSHLogger, "_debug_level", None), int)


class LeanConnection(asyncssh.SSHClientConnection):
    """asyncssh's client connection with less work per packet, as methods of the class (a
    fleet holds thousands: nothing is added to each connection but one float):

    - no empty SSH_MSG_IGNORE before each packet it encrypts: asyncssh's guard for CBC ciphers
      (whose next IV an attacker could otherwise predict); under AES-GCM, chacha20-poly1305 or
      CTR it guards nothing and costs an encryption and a send per packet. OpenSSH sends none.
      Kept while the outgoing cipher is a CBC one.
    - no log text formatted per packet (~5 % of the CPU per streamed line) unless asyncssh's
      debug level is 3, where it would be kept.
    - a lazy keepalive: asyncssh cancels and re-creates its keepalive timer on every packet
      received (~12 % of the CPU per streamed line); here a packet only notes the time, and
      the timer, when it fires, re-arms itself for the rest of the interval if data came
      meanwhile, else sends the keepalive as asyncssh would.
    Used only where LEAN_FITS (asyncssh has these methods)."""

    gpubench_sign_first = False
    _last_received = 0.0

    def send_packet(self, pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype == MSG_IGNORE and args == _EMPTY_IGNORE and b"cbc" not in self._enc_alg_cs:
            return
        super().send_packet(pkttype, *args, handler=handler)

    def log_received_packet(self, *args: Any, **kwargs: Any) -> None:
        if SSHLogger._debug_level >= 3:
            super().log_received_packet(*args, **kwargs)

    def log_sent_packet(self, *args: Any, **kwargs: Any) -> None:
        if SSHLogger._debug_level >= 3:
            super().log_sent_packet(*args, **kwargs)

    def _reset_keepalive_timer(self) -> None:
        self._last_received = self._loop.time()

    def _keepalive_timer_callback(self) -> None:
        interval = self._keepalive_interval
        idle = self._loop.time() - self._last_received
        if interval and idle < interval:
            self._keepalive_timer = self._loop.call_later(interval - idle,
                                                          self._keepalive_timer_callback)
            return
        super()._keepalive_timer_callback()


class SignFirstConnection(LeanConnection):
    """A LeanConnection whose key auth sends the signature in its first request (see
    _install_sign_first): for a host with an identity file and no ssh config."""
    gpubench_sign_first = True


_SIG_ALGS: dict[frozenset, frozenset] = {}


def drop_handshake_state(conn: Any) -> None:
    """Free what asyncssh keeps from the handshake but uses only during one (~4.6 KB per
    connection: a fleet holds thousands): both KEXINIT payloads (each key exchange, a rekey's
    too, sends and receives new ones before hashing them) and the server's signature
    algorithms (read while authenticating), which become one shared frozenset per distinct
    value. Leaves the connection alone if this asyncssh's internals differ."""
    if not all(isinstance(getattr(conn, a, None), bytes) for a in ("_client_kexinit", "_server_kexinit")):
        return
    conn._client_kexinit = conn._server_kexinit = b""
    algs = getattr(conn, "_server_sig_algs", None)
    if isinstance(algs, (set, frozenset)):
        key = frozenset(algs)
        conn._server_sig_algs = _SIG_ALGS.setdefault(key, key) if len(_SIG_ALGS) < 64 else key


def quiet_packet_log(conn: Any) -> None:
    """asyncssh formats a log text for every packet sent or received (~5 % of the client's
    CPU per streamed line) and drops it unless its debug level is 3: skip the formatting
    while that level is below 3 (as it was when this connection or channel was made): the
    connection logs its own packets, a channel's packets are logged by the channel."""
    level = getattr(SSHLogger, "_debug_level", None)
    if not isinstance(level, int) or level >= 3 or not hasattr(conn, "log_received_packet"):
        return

    def skip(*_args: Any, **_kwargs: Any) -> None:
        return None
    conn.log_received_packet = skip              # type: ignore[method-assign]
    conn.log_sent_packet = skip                  # type: ignore[method-assign]


def _install_level_check_first() -> bool:
    """asyncssh's logger turns every argument into text (joins algorithm lists, decodes bytes)
    before the logging module looks at the level; a fleet's handshakes log ~17 lines each at
    INFO/DEBUG that nobody keeps. Check the level first: what is logged, where a handler wants
    it, is unchanged. False (nothing installed) if this asyncssh's logger differs."""
    if SSHLogger is None:
        return False
    original = SSHLogger.log
    if getattr(original, "_gpubench", False):
        return True
    if not hasattr(SSHLogger, "isEnabledFor"):
        return False

    def log(self: Any, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            original(self, level, msg, *args, **kwargs)
    log._gpubench = True                          # type: ignore[attr-defined]
    SSHLogger.log = log                           # type: ignore[method-assign]
    return True


_LEVEL_CHECK_FIRST = _install_level_check_first()


# Options made once per distinct setting and copied per host (a fleet makes thousands): only
# where no ssh config is read, so nothing in them depends on the host but what is set per copy.
OPTION_TEMPLATES: dict[tuple, asyncssh.SSHClientConnectionOptions] = {}
_PER_HOST = ("client_factory",)
_TEMPLATE_FIELDS = ("orig_host", "host", "port", "protocol_factory", "config")


def no_ssh_config(ssh_config: Any) -> bool:
    """True when asyncssh would read no config file: none given, or the default (`()`) and no
    readable ~/.ssh/config (asyncssh's own test)."""
    if ssh_config == ():
        return not os.access(os.path.expanduser(os.path.join("~", ".ssh", "config")), os.R_OK)
    return not ssh_config


def options_from_template(address: str, port: int | None, kwargs: dict[str, Any]
                           ) -> asyncssh.SSHClientConnectionOptions:
    """Options for one host with no ssh config: a copy of those built once for the same
    settings, with this host's name, port and host key judge set (~0.3 ms of CPU saved per
    host). Objects in the settings (keys, parsed known_hosts) key by identity: the shared
    caches hand out one object per file version, and the template keeps it alive."""
    shared = {k: v for k, v in kwargs.items() if k not in _PER_HOST}
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) and all(isinstance(x, str) for x in v)
                        else v if isinstance(v, (str, int, float, type(None))) else ("id", id(v)))
                       for k, v in shared.items()))
    template = OPTION_TEMPLATES.get(key)
    if template is None:
        if len(OPTION_TEMPLATES) >= 64:
            OPTION_TEMPLATES.clear()
        template = OPTION_TEMPLATES[key] = asyncssh.SSHClientConnectionOptions(
            None, config=[], host=address, **shared)
    options = copy.copy(template)
    options.orig_host = options.host = address
    options.port = port or 22
    options.protocol_factory = kwargs.get("client_factory") or asyncssh.SSHClient
    return options


class _Probe(asyncssh.SSHClient):
    pass


def _templates_fit() -> bool:
    """Whether this asyncssh keeps the per-host settings where options_from_template sets them."""
    try:
        probe = asyncssh.SSHClientConnectionOptions(None, config=[], host="h", port=2,
                                                    username="u", client_factory=_Probe)
    except Exception:
        return False
    return all(hasattr(probe, a) for a in _TEMPLATE_FIELDS) and probe.protocol_factory is _Probe \
        and (probe.orig_host, probe.host, probe.port) == ("h", "h", 2)


TEMPLATES_FIT = _templates_fit()


def _direct_connect() -> Any:
    """asyncssh.connect() builds its options again from the ones it is given, in a thread
    (~1.3 ms of CPU per connection plus a thread hop): with options complete already, its
    inner step is enough. None when this asyncssh has no such step (connect() is used)."""
    inner = getattr(asyncssh.connection, "_connect", None)
    try:
        params = list(inspect.signature(inner).parameters) if inner else []
    except (TypeError, ValueError):
        params = []
    if params != ["options", "config", "loop", "flags", "sock", "conn_factory", "msg"]:
        return None
    return inner


_CONNECT_INNER = _direct_connect()


# The instance fields LeanConnection reads; checked on the first one made (LEAN_FITS is then
# cleared, and plain connections made, if this asyncssh lacks any).
_LEAN_FIELDS = ("_enc_alg_cs", "_loop", "_keepalive_interval", "_keepalive_timer")


def _connection(loop: asyncio.AbstractEventLoop, options: asyncssh.SSHClientConnectionOptions,
                sign_first: bool) -> asyncssh.SSHClientConnection:
    global LEAN_FITS
    if LEAN_FITS:
        conn = (SignFirstConnection if sign_first and _SIGN_FIRST_READY else LeanConnection)(
            loop, options, wait="auth")
        if all(hasattr(conn, a) for a in _LEAN_FIELDS):
            return conn
        LEAN_FITS = False
    return asyncssh.SSHClientConnection(loop, options, wait="auth")


async def open_connection(options: asyncssh.SSHClientConnectionOptions, config: Any,
                          sign_first: bool = False) -> asyncssh.SSHClientConnection:
    """Connect and authenticate, with options complete already. `sign_first`: the host's key
    auth sends its signature at once (a host with an identity file and no ssh config)."""
    if _CONNECT_INNER is None:
        return await asyncssh.connect(options.host, options=options, config=config)
    loop = asyncio.get_running_loop()
    return await within(
        _CONNECT_INNER(options, config, loop, 0, None, lambda: _connection(loop, options, sign_first),
                       "Opening SSH connection to"),
        options.connect_timeout)
