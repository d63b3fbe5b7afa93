"""Environment variables whose names look secret are stored as "<redacted>", never as their
value: in the engine's `hello` (host.env), in result documents (the scenario's and the proxy's
env) and in saved streams. The engine still runs with the real values; only copies are
redacted. One rule for all of them, here, because the engine ships alone and everything else
may import it.

A name is split into words at '_', '-', '.' and lower-to-upper case changes (`apiKey` is
API, KEY). It is secret when a word is one of SECRET_WORDS (KEY, AUTH, PASS, ...: short words
that only count whole, so KEYBOARD or AUTHOR stay) or contains one of SECRET_STEMS (TOKEN,
SECRET, PASSWORD, ...: long enough to count inside a word, as in PGPASSWORD or APIKEY).
CUDA_VISIBLE_DEVICES, CUDA_DEVICE_MEMORY_LIMIT and the like are kept.
"""
from __future__ import annotations

import re
from typing import Mapping

# What may be an environment variable's name: a name with '=' or a leading '-' would be read
# as something else on a command line. Config load and the remote command line both check it.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REDACTED = "<redacted>"
SECRET_WORDS = frozenset({"KEY", "KEYS", "AUTH", "PASS", "PWD", "CREDS", "COOKIE", "PAT"})
SECRET_STEMS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "PRIVATE",
                "APIKEY", "ACCESSKEY", "AUTHORIZATION", "SIGNATURE")


def is_secret_name(name: str) -> bool:
    words = re.split(r"[^A-Z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).upper())
    return any(w in SECRET_WORDS or any(stem in w for stem in SECRET_STEMS) for w in words)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` with the value of every secret-looking name replaced by REDACTED."""
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in env.items()}


def redact_env_tables(value):
    """A copy of `value` (a document part: dicts, lists) in which every table under a key
    named "env" is redacted: the scenario's env, the proxy's env, a hello's host.env."""
    if isinstance(value, dict):
        return {k: redact_env(v) if k == "env" and isinstance(v, dict) else redact_env_tables(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact_env_tables(v) for v in value]
    return value


def redact_hello(line: dict) -> dict | None:
    """A hello line from an engine that did not redact its host.env itself (another version):
    the redacted copy, or None when there is nothing to redact."""
    env = (line.get("host") or {}).get("env") if line.get("type") == "hello" else None
    if not isinstance(env, dict) or redact_env(env) == env:
        return None
    return {**line, "host": {**line["host"], "env": redact_env(env)}}
