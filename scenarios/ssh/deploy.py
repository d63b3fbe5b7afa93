"""Upload the engine bundle (bundle.py) into the remote cache over SFTP, when the remote check
found no usable copy there.

Nothing in the cache is trusted for being there: the remote check (remote_check.py, run by the
same process that then execs the engine) uses a bundle only when the cache folder is the user's
and private and the digest of the bundle's files on disk equals this client's. Upload is atomic:
directories 0700 and files 0600 go to ``.tmp-engine-<hash16>-<random>``, renamed into place
last. Two clients racing to upload the same bundle both succeed: the loser removes its temporary
copy (the winner's is checked like any other before it runs).
"""
from __future__ import annotations

import posixpath
import secrets
import time
from dataclasses import dataclass

from .asyncssh_import import asyncssh
from .bundle import Bundle
from .remote_check import MANIFEST as MANIFEST_NAME

CACHE_ROOT = ".cache/gpubench"          # relative to the remote home directory
STALE_UPLOAD_S = 3600.0   # a temporary upload folder this old was left by a killed client


async def _prune_stale_uploads(sftp, root: str) -> None:
    try:
        entries = await sftp.readdir(root)
    except Exception:
        return
    for entry in entries:
        name = entry.filename
        mtime = entry.attrs.mtime or 0
        if name.startswith(".tmp-engine-") and time.time() - mtime > STALE_UPLOAD_S:
            try:
                await sftp.rmtree(posixpath.join(root, name), ignore_errors=True)
            except Exception:
                pass


@dataclass(frozen=True)
class Deployment:
    path: str          # absolute remote directory holding engine/ and the supervisor
    uploaded: bool     # False: the cache already had this bundle
    bundle: Bundle

    @property
    def files(self) -> int:
        return len(self.bundle.files)

    @property
    def bytes(self) -> int:
        return self.bundle.size


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


async def deploy(conn, bundle: Bundle, cache_root: str = CACHE_ROOT) -> Deployment:
    """Upload `bundle` into the remote cache over SFTP (the check found none usable there).

    `conn` is an asyncssh client connection. Raises OSError-like asyncssh.SFTPError on
    permission or disk problems; callers phrase them for the user.
    """
    private_dir = asyncssh.SFTPAttrs(permissions=PRIVATE_DIR)
    private_file = asyncssh.SFTPAttrs(permissions=PRIVATE_FILE)
    async with conn.start_sftp_client() as sftp:
        home = await sftp.realpath(".")
        root = posixpath.join(home, cache_root) if not cache_root.startswith("/") else cache_root
        target = posixpath.join(root, bundle.dir_name)
        await sftp.makedirs(root, private_dir, exist_ok=True)
        await _prune_stale_uploads(sftp, root)
        tmp = posixpath.join(root, f".tmp-{bundle.dir_name}-{secrets.token_hex(4)}")
        try:
            await sftp.mkdir(tmp, private_dir)
            dirs = sorted({posixpath.dirname(p) for p, _ in bundle.files} - {""})
            for d in dirs:  # sorted: parents before children
                await sftp.makedirs(posixpath.join(tmp, d), private_dir, exist_ok=True)
            for rel_path, data in (*bundle.files, (MANIFEST_NAME, bundle.manifest())):
                async with sftp.open(posixpath.join(tmp, rel_path), "wb", private_file) as f:
                    await f.write(data)
            try:
                await sftp.rename(tmp, target)
            except Exception:
                # Someone else installed the same bundle meanwhile: it is checked before it runs.
                if not await sftp.exists(target):
                    raise
                await sftp.rmtree(tmp, ignore_errors=True)
        except BaseException:
            try:
                await sftp.rmtree(tmp, ignore_errors=True)
            except Exception:
                pass
            raise
        return Deployment(target, True, bundle)
