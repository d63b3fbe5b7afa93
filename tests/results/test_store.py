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
from results.store import Store, filter_runs
from tests.results.synth import make_doc

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
    assert json.loads(store.index_path.read_text())["version"] == 1


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
from tests.results.synth import make_doc
doc, _ = make_doc(0, sessions=40)
store = Store({data!r})
i = 0
while True:
    doc["id"] = f"20261125-000000-crash-{{i:06d}}"
    doc["notes"] = "x" * 200000
    store.save(doc)
    print(i, flush=True)
    i += 1
"""


def test_writer_killed_mid_save_leaves_only_complete_documents(tmp_path):
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), data=str(data))],
                            stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # let it save a few, then kill it somewhere inside a save
            assert proc.stdout.readline()
        time.sleep(0.013)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    store = Store(data)
    listing = store.list_runs()
    assert len(listing.runs) >= 3 and listing.warnings == []
    for summary in listing.runs:
        assert store.load(summary["id"])["notes"] == "x" * 200000
    # leftovers of the killed save, if any, are hidden temp files, never a visible document
    assert all(p.name.startswith(".") or p.name in ("index.json",) or p.name.endswith(".json")
               for p in data.iterdir())


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


def test_stale_temp_files_of_a_crashed_save_are_removed_fresh_ones_kept(store):
    saved(store, 1)
    old = store.dir / ".20260101-x.json.tmp-999"
    fresh = store.dir / ".20260102-x.json.tmp-998"
    old.write_text('{"partial')
    fresh.write_text('{"partial')
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert len(store.list_runs().runs) == 1  # never listed
    saved(store, 2)
    assert not old.exists() and fresh.exists()
