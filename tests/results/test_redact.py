"""Secret-looking environment variables are stored redacted: which names, and every place an
env table reaches a saved document or stream (engine hello, scenario and proxy details, a
hello from an engine that did not redact)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine import facts
from engine.redact import REDACTED, is_secret_name, redact_env
from results.document import SessionRecord, archive_lines, build_document
from tests.support import synth

SECRET = ["API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HF_TOKEN", "GITHUB_TOKEN",
          "NVIDIA_API_KEY", "NGC_API_KEY", "PGPASSWORD", "DB_PASS", "MYSQL_PWD", "apiKey",
          "clientSecret", "PRIVATE_KEY_PEM", "GOOGLE_APPLICATION_CREDENTIALS", "GH_PAT",
          "HTTP_AUTHORIZATION", "GPUBENCH_AUTH", "registry-password", "SSL_KEY_PASSPHRASE"]
KEPT = ["CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_MEMORY_LIMIT", "CUDA_DEVICE_SM_LIMIT",
        "CUDA_MPS_PIPE_DIRECTORY", "NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_VISIBLE_DEVICES",
        "LD_PRELOAD", "LD_LIBRARY_PATH", "GPUBENCH_INTERPOSE_DELAY_SEED",
        "GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES", "KEYBOARD_LAYOUT", "AUTHOR", "MONKEY_PATCH",
        "PATH", "COMPAT_MODE", "PASSIVE"]


@pytest.mark.parametrize("name", SECRET)
def test_secret_looking_names_are_redacted(name):
    assert is_secret_name(name) and redact_env({name: "v"}) == {name: REDACTED}


@pytest.mark.parametrize("name", KEPT)
def test_other_names_keep_their_value(name):
    assert not is_secret_name(name) and redact_env({name: "v"}) == {name: "v"}


def test_the_engine_hello_never_carries_a_secret():
    env = facts.env_facts({"CUDA_VISIBLE_DEVICES": "0", "NVIDIA_API_KEY": "nvapi-x",
                           "GPUBENCH_TOKEN": "t", "HOME": "/root", "AWS_SECRET_ACCESS_KEY": "s"})
    assert env == {"CUDA_VISIBLE_DEVICES": "0", "GPUBENCH_TOKEN": REDACTED,
                   "NVIDIA_API_KEY": REDACTED}


def test_a_document_and_its_stream_redact_what_another_engine_sent():
    lines = synth.session_lines(np.random.default_rng(0), repeats=1)
    hello = json.loads(lines[0])
    hello["host"]["env"] = {"CUDA_VISIBLE_DEVICES": "0", "NVIDIA_API_KEY": "nvapi-leak"}
    lines[0] = json.dumps(hello)
    scenario = {"name": "p", "launcher": "local",
                "details": {"env": {"HF_TOKEN": "hf-leak", "CUDA_DEVICE_SM_LIMIT": "50"},
                            "proxy": {"env": {"API_KEY": "key-leak"}, "preload": "/x.so"}}}
    recs = [SessionRecord(lines, trial=0)]
    doc = build_document(recs, scenario)
    stream = archive_lines(recs)
    text = json.dumps(doc) + "\n".join(stream)
    assert "leak" not in text
    assert doc["hello"]["host"]["env"] == {"CUDA_VISIBLE_DEVICES": "0",
                                           "NVIDIA_API_KEY": REDACTED}
    assert doc["scenario"]["details"]["env"] == {"HF_TOKEN": REDACTED,
                                                 "CUDA_DEVICE_SM_LIMIT": "50"}
    assert doc["scenario"]["details"]["proxy"] == {"env": {"API_KEY": REDACTED},
                                                   "preload": "/x.so"}
    assert json.loads(stream[0])["host"]["env"]["NVIDIA_API_KEY"] == REDACTED
    assert stream[1:] == lines[1:]          # only the hello was rewritten
    assert scenario["details"]["env"]["HF_TOKEN"] == "hf-leak"   # the caller's copy untouched
