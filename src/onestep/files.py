"""Writing files so that a failure never leaves half a file, and never touches what the user did not ask for.

Every output goes through a temporary file in the target's folder and `os.replace`: the path holds either its
old content (or nothing) or all of the new one. Files get the permissions a new file gets (0644 under the usual
umask). Cleanup never raises over the error that caused it. No torch here: `onestep info` imports this.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import OneStepError


class OutputExistsError(OneStepError):
    """The output path exists and overwriting was not asked for."""


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _check_target(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"{path}: exists (use --force to overwrite)")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; when the block succeeds it becomes `path`, otherwise it is removed.
    Missing parent folders are created."""
    path = Path(path)
    _check_target(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    mode = os.fstat(fd).st_mode & 0o777  # 0o666 less the umask: what a plain new file gets
    os.close(fd)
    try:
        yield tmp
        _check_target(path, overwrite)  # it may have appeared meanwhile
        os.chmod(tmp, mode)  # writers that replace the file (safetensors does) create it 0o600
        os.replace(tmp, path)
    finally:
        _remove_quietly(tmp)


def write_atomic(path: str | os.PathLike[str], data: bytes, overwrite: bool = True) -> None:
    """Write `data` to `path` atomically (see the module docstring)."""
    write_atomic_group([(path, data)], overwrite=overwrite)


def write_atomic_group(outputs: list[tuple[str | os.PathLike[str], bytes]], overwrite: bool = True) -> None:
    """Write several files all or none: every temporary file is written (and flushed) first; if any write
    or rename fails, the files this call already put in place are removed again."""
    staged: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for target, data in outputs:
            target = Path(target)
            _check_target(target, overwrite)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temporary_name(target)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            staged.append((tmp, target))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for tmp, target in staged:
            _check_target(target, overwrite)
            os.replace(tmp, target)
            placed.append(target)
    except BaseException:
        for target in placed:
            _remove_quietly(target)
        raise
    finally:
        for tmp, _ in staged:
            _remove_quietly(tmp)


def describe_os_error(error: OSError) -> str:
    """One line: the file and the cause, as a user reads it ("out/a.osc: No space left on device")."""
    cause = error.strerror or type(error).__name__
    name = error.filename
    if isinstance(name, (str, os.PathLike)):
        name = os.fspath(name)
        # the temporary name means nothing to the user: show the file it stood for
        base = os.path.basename(name)
        if base.startswith(".") and base.endswith(".tmp") and base.count(".") >= 3:
            name = os.path.join(os.path.dirname(name), base[1:].rsplit(".", 2)[0])
        return f"{name}: {cause}"
    return cause
