"""SFTP failures as ``OSError``s that name the remote path and the cause.

SFTP version 3, the only version OpenSSH's ``sftp-server`` speaks, has status codes for "no such
file" and "permission denied" only; every other errno (``ENOSPC``, ``EROFS``, ``EDQUOT``, ``EIO``)
arrives as ``SSH_FX_FAILURE`` with the text "Failure". After such a failure this module asks the
server for the state of the file system holding the path (``statvfs@openssh.com``, one round
trip, the same ``statvfs(3)`` the kernel answers from) and names the cause only when that state
proves it:

- the file system is mounted read-only (``ST_RDONLY``): ``EROFS``, "Read-only file system";
- it has no free inode, or fewer free bytes than the failed write needed (free blocks as root,
  blocks available to other users otherwise): ``ENOSPC``, "No space left on device";
- anything else: the cause is reported as unknown, with the free space and inodes seen, rather
  than guessed (a quota, an I/O error or a full disk of another user look alike from here).
"""

from __future__ import annotations

import errno
import posixpath

import asyncssh
from asyncssh.constants import FX_NO_SUCH_FILE, FX_PERMISSION_DENIED

ST_RDONLY = 1  # statvfs(3) f_flag bit, as sent by statvfs@openssh.com
_BY_CODE = {
    FX_NO_SUCH_FILE: (errno.ENOENT, "No such file or directory"),
    FX_PERMISSION_DENIED: (errno.EACCES, "Permission denied"),
}


async def diagnose(
    sftp: asyncssh.SFTPClient, what: str, remote: str, exc: asyncssh.SFTPError, needed: int, as_root: bool
) -> OSError:
    """The ``OSError`` to raise for ``exc``, raised by ``what`` (``"open"``, ``"write"``,
    ``"read"``) of ``remote``.

    ``needed``: bytes the failed request needed (at least 1); ``as_root``: the login user is
    root (root may use the blocks a file system reserves). The message reads
    ``SFTP <what> of <remote> failed: <cause>``; ``errno`` is set when the cause is known.
    Never raises: a failed ``statvfs`` leaves the cause unknown.
    """
    prefix = f"SFTP {what} of {remote} failed"
    if exc.code in _BY_CODE:
        code, text = _BY_CODE[exc.code]
        return OSError(code, f"{prefix}: {text} (server: {exc.reason})")
    if not isinstance(exc, asyncssh.SFTPFailure):
        return OSError(f"{prefix}: {exc.reason or type(exc).__name__}")
    directory = posixpath.dirname(remote) or "."
    try:
        vfs = await sftp.statvfs(directory)
    except (asyncssh.Error, OSError) as e:
        return OSError(
            f"{prefix}: cause unknown: the server says only '{exc.reason}' (SFTP version 3) and "
            f"could not report the state of {directory}'s file system ({getattr(e, 'reason', e)})"
        )
    free = (vfs.bfree if as_root else vfs.bavail) * vfs.frsize
    inodes = vfs.ffree if as_root else vfs.favail
    where = f"the file system of {directory}"
    if vfs.flags & ST_RDONLY:
        return OSError(errno.EROFS, f"{prefix}: Read-only file system ({where} is mounted read-only)")
    if inodes == 0:
        return OSError(errno.ENOSPC, f"{prefix}: No space left on device (no free inode on {where})")
    if free < needed:
        return OSError(errno.ENOSPC, f"{prefix}: No space left on device ({free} bytes free on {where})")
    return OSError(
        f"{prefix}: cause unknown: the server says only '{exc.reason}' (SFTP version 3); "
        f"{where} is writable with {free} bytes and {inodes} inodes free"
    )
