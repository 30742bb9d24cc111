"""The lock on DATA_DIR: one process at a time writes the embedded store.

Two processes each running a group-commit writer and persistent-subscription groups over one
SQLite file would each believe they own the groups' checkpoints and wake only their own
subscribers, so an order written through one stays out of the other's views. The first process
takes an exclusive `flock` on `DATA_DIR/orders.lock` and writes its pid there; the kernel drops
the lock when the process ends however it ends, so a crash never leaves a stale lock behind. A
second process finds it taken and is told whose it is.

A process may open the store more than once (the CLI takes the lock before the server starts,
the server's store takes it again): holds are counted per directory and the file is unlocked
when the last one is released. Readers that never write (`orders rebuild`) take no lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

LOCK_FILE_NAME = "orders.lock"


class DataDirLocked(RuntimeError):
    """Another process holds DATA_DIR; `pid` is the one its lock file names (None if unreadable)."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"DATA_DIR {str(data_dir)!r} is in use by {holder} (the embedded event store serves "
            "one process; stop it, or give this one another DATA_DIR)"
        )
        self.data_dir = data_dir
        self.pid = pid


class _Held:
    """One open, flock-ed lock file and how many holders in this process share it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0


# The lock belongs to the process, not to an object: this table is what lets two holders in one
# process share it instead of locking each other out.
_held: dict[Path, _Held] = {}
_guard = threading.Lock()


class DataDirLock:
    """A hold on DATA_DIR's lock; `release()` it (or use `with`) when done."""

    def __init__(self, key: Path) -> None:
        self._key = key
        self._released = False

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Hold `data_dir`'s lock (creating the directory and the lock file when missing).
        Raises `DataDirLocked` naming the holder when another process has it."""
        data_dir.mkdir(parents=True, exist_ok=True)
        key = data_dir.resolve()
        with _guard:
            held = _held.get(key)
            if held is None:
                held = _Held(_lock(key, data_dir))
                _held[key] = held
            held.count += 1
        return cls(key)

    def release(self) -> None:
        """Give this hold back; the file is unlocked once no holder in this process is left."""
        with _guard:
            if self._released:
                return
            self._released = True
            held = _held[self._key]
            held.count -= 1
            if held.count == 0:
                del _held[self._key]
                # Emptied first, so a reader never sees a pid of a process that let go.
                os.ftruncate(held.fd, 0)
                os.close(held.fd)  # closing the descriptor drops the flock

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _lock(key: Path, shown: Path) -> int:
    fd = os.open(key / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise DataDirLocked(shown, pid) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
