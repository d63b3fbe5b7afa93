"""results.store: atomic saves, the index, bad files, full disk, a writer killed mid-save."""
from __future__ import annotations

import errno
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from results import store as store_mod
from results.document import archive_lines
from results.schema import DocumentError, RunNotFound, StoreError
from results.store import INDEX_VERSION, Store, filter_runs
from tests.support.synth import make_doc

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "data")


def saved(store, seed=0, **kw):
    doc, recs = make_doc(seed, sessions=2, **kw)
    store.save(doc, archive_lines(recs))
    return doc


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())
            if p.name.endswith(".json") and p.name != "index.json"}


def test_save_load_roundtrip_and_raw_stream_replayable(store):
    doc, recs = make_doc(1, sessions=2)
    path = store.save(doc, archive_lines(recs))
    assert path == store.doc_path(doc["id"])
    loaded = store.load(doc["id"])
    assert loaded["workloads"] == doc["workloads"] and loaded["raw"] == f"{doc['id']}.jsonl.gz"
    raw = store.raw_lines(doc["id"])
    assert raw == archive_lines(recs)
    assert [json.loads(x)["type"] for x in raw].count("hello") == 2  # session boundaries
    with gzip.open(store.raw_path(doc["id"])) as fh:  # plain gzip'd JSON lines
        assert fh.readline().startswith(b'{"v":1')
    assert not [p for p in store.dir.iterdir() if ".tmp-" in p.name]


def test_resolve_prefix_ambiguous_and_unknown(store):
    a = saved(store, 1, scenario="alpha")
    saved(store, 2, scenario="alpha")
    assert store.resolve(a["id"]) == a["id"]
    with pytest.raises(RunNotFound, match="ambiguous"):
        store.resolve(a["id"][:8])
    with pytest.raises(RunNotFound, match=r"^no run 'nope' in .* \(see `gpubench list`\)$"):
        store.load("nope")


def test_list_uses_the_index_without_parsing_documents(store, monkeypatch):
    docs = [saved(store, i) for i in range(5)]
    calls = []
    real = Store._read_path
    monkeypatch.setattr(Store, "_read_path", lambda self, p, label: calls.append(p) or real(self, p, label))
    listing = store.list_runs()
    assert sorted(r["id"] for r in listing.runs) == sorted(d["id"] for d in docs)
    assert calls == []  # every summary came from the index
    # a document written behind the store's back is noticed and read once
    extra, recs = make_doc(9, sessions=1)
    Store(store.dir).save(extra)
    (store.dir / "index.json").unlink()
    assert len(store.list_runs().runs) == 6 and len(calls) == 6
    calls.clear()
    assert len(store.list_runs().runs) == 6 and calls == []


def test_list_notices_deleted_files_and_rebuilds_a_corrupt_index(store):
    a, b = saved(store, 1), saved(store, 2)
    store.doc_path(a["id"]).unlink()
    assert [r["id"] for r in store.list_runs().runs] == [b["id"]]
    store.index_path.write_text("{garbage")
    assert [r["id"] for r in store.list_runs().runs] == [b["id"]]
    assert json.loads(store.index_path.read_text())["version"] == INDEX_VERSION


@pytest.mark.parametrize("content, message", [
    (b'{"schema_version": 1, "id": "x", "created": "2026', "is truncated"),
    (b"\x00\x01garbage{{", "is corrupt"),
    (b"", "is empty"),
    (b'{"schema_version": 99, "id": "x"}', "schema version 99 is newer than this gpubench reads"),
    (b'{"schema_version": 0, "id": "x"}', "unknown schema version 0"),
    (b'{"id": "x"}', "no schema_version"),
    (b'[1, 2]', "top level is not an object"),
    (b'{"schema_version": 1, "id": "x", "created": "t", "scenario": {}, "workloads": [], '
     b'"validity": {}}', "scenario.name"),
])
def test_bad_files_one_line_for_show_skipped_in_list_others_untouched(store, content, message):
    good = saved(store, 1)
    (store.dir / "20260101-000000-bad-000000.json").write_bytes(content)
    before = snapshot(store.dir)
    with pytest.raises(DocumentError) as info:
        store.load("20260101-000000-bad")
    assert message in str(info.value) and "\n" not in str(info.value)
    listing = store.list_runs()
    assert [r["id"] for r in listing.runs] == [good["id"]]
    assert len(listing.warnings) == 1 and listing.warnings[0].startswith(
        "skipped 20260101-000000-bad-000000.json: ") and message in listing.warnings[0]
    assert snapshot(store.dir) == before  # never a change to any result


@pytest.mark.parametrize("fail_at", ["write", "fsync"])
def test_full_disk_during_save_clear_message_nothing_partial_old_intact(store, monkeypatch, fail_at):
    old = saved(store, 1)
    before = snapshot(store.dir)
    doc, recs = make_doc(2, sessions=2)
    real = getattr(os, fail_at)
    calls = {"n": 0}

    def full(*a, **kw):
        calls["n"] += 1
        if calls["n"] >= 2:  # the raw stream fits, the document does not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **kw)

    monkeypatch.setattr(store_mod.os, fail_at, full)
    with pytest.raises(StoreError) as info:
        store.save(doc, archive_lines(recs))
    monkeypatch.setattr(store_mod.os, fail_at, real)
    msg = str(info.value)
    assert "no space left on device" in msg and doc["id"] in msg and "\n" not in msg
    assert snapshot(store.dir) == before
    assert not store.raw_path(doc["id"]).exists()
    assert not [p for p in store.dir.iterdir() if ".tmp-" in p.name]
    assert [r["id"] for r in store.list_runs().runs] == [old["id"]]


def test_unwritable_data_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    doc, _ = make_doc(1, sessions=1)
    with pytest.raises(StoreError, match="cannot create data directory"):
        Store(blocker / "data").save(doc)


WRITER = r"""
import sys
sys.path.insert(0, {root!r})
from results.store import Store
from tests.support.synth import make_doc
doc, _ = make_doc(0, sessions=4)
doc["notes"] = "x" * 6_000_000          # a big document: a long write + fsync window
store = Store({data!r})
i = 0
while True:
    doc["id"] = f"20261125-000000-crash-{{i:06d}}"
    store.save(doc)
    i += 1
"""


def _kill_inside_a_save(data: Path) -> bool:
    """Start a writer, SIGKILL it the moment a document's temp file exists; True when the
    kill left that temp file behind (it landed inside the write, before the rename)."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), data=str(data))])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                names = os.listdir(data)
            except FileNotFoundError:
                continue
            if any(n.startswith(".2026") and ".json.tmp-" in n for n in names) and \
                    sum(n.endswith(".json") for n in names) >= 2:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return any(n.startswith(".2026") and ".json.tmp-" in n for n in os.listdir(data))


def test_writer_killed_mid_save_leaves_only_complete_documents(tmp_path):
    landed = 0
    for attempt in range(6):
        data = tmp_path / f"data{attempt}"
        landed += _kill_inside_a_save(data)
        store = Store(data)
        listing = store.list_runs()
        assert listing.runs and listing.warnings == []
        for summary in listing.runs:  # every visible document is whole
            assert len(store.load(summary["id"])["notes"]) == 6_000_000
        if landed >= 2:
            break
    assert landed >= 1  # at least one kill really interrupted a document write


def test_delete_removes_document_raw_and_index_entry(store):
    a, b = saved(store, 1), saved(store, 2)
    assert store.delete(a["id"]) == a["id"]
    assert not store.doc_path(a["id"]).exists() and not store.raw_path(a["id"]).exists()
    assert [r["id"] for r in store.list_runs().runs] == [b["id"]]
    assert a["id"] not in json.dumps(json.loads(store.index_path.read_text()))
    with pytest.raises(RunNotFound):
        store.delete(a["id"])


def test_filter_runs():
    runs = [{"id": "1", "scenario": "a", "host": "gpu-node-1", "label": "nightly",
             "created": "2026-11-20T10:00:00Z"},
            {"id": "2", "scenario": "b", "host": "gpu-node-2", "label": "",
             "created": "2026-11-25T10:00:00Z"}]
    assert [r["id"] for r in filter_runs(runs, scenario="a")] == ["1"]
    assert [r["id"] for r in filter_runs(runs, host="node-2")] == ["2"]
    assert [r["id"] for r in filter_runs(runs, label="night")] == ["1"]
    assert [r["id"] for r in filter_runs(runs, since="2026-11-21")] == ["2"]
    assert [r["id"] for r in filter_runs(runs, until="2026-11-20")] == ["1"]
    assert [r["id"] for r in filter_runs(runs, since="2026-11-20", until="2026-11-25")] == ["1", "2"]


def test_temp_files_of_a_crashed_save_are_removed_a_live_writers_kept(store):
    """A temp file whose writer process is gone, or over an hour old, is a leftover; one of a
    live process (a save in progress) stays."""
    saved(store, 1)
    old = store.dir / f".20260101-x.json.tmp-{os.getpid()}"
    live = store.dir / f".20260102-x.json.tmp-{os.getpid()}"
    dead_pid = _dead_pid()
    dead = store.dir / f".20260103-x.jsonl.gz.tmp-{dead_pid}"
    for p in (old, live, dead):
        p.write_text('{"partial')
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert len(store.list_runs().runs) == 1  # never listed
    assert not old.exists() and not dead.exists() and live.exists()
    saved(store, 2)
    assert live.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("run_id", ["../evil", "/tmp/evil", "a/../../b", "a\x00b", "a\nb",
                                    "x" * 300, ".hidden", "-rf", "", 42])
def test_save_refuses_an_id_that_is_not_a_plain_file_name(store, tmp_path, run_id):
    doc, recs = make_doc(1, sessions=1)
    doc["id"] = run_id
    with pytest.raises(DocumentError, match="is not a run id") as info:
        store.save(doc, archive_lines(recs))
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []     # nothing written anywhere


@pytest.mark.parametrize("name", ["../../etc/evil", "/abs/path", "a\x00b", "two\nlines",
                                  "ü" * 300, "..", "-rf"])
def test_scenario_and_host_names_never_reach_a_path(store, tmp_path, name):
    """The run id is made from the scenario name but is always a plain file name in the
    store; names and labels stay data (one row each in the listing)."""
    doc, recs = make_doc(1, scenario=name, sessions=1, label=name, hostname=name)
    path = store.save(doc, archive_lines(recs))
    assert path.parent == store.dir and path.name == f"{doc['id']}.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    [summary] = store.list_runs().runs
    assert summary["scenario"] == name and summary["label"] == name
    assert summary["host"] == f"local ({name})"
    assert store.load(doc["id"])["scenario"]["name"] == name
