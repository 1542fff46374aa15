"""Getting PH2 onto disk: the cache folder, a resumable download, safe archive extraction.

Archives are recognised by their content (RAR, ZIP, or TAR with any of gzip/bzip2/xz), not by
their name. Extraction refuses any member that would land outside the destination (absolute
paths, ``..`` components, links pointing out). RAR needs the ``rarfile`` package and, for
compressed members, an external tool on PATH: ``unrar``, or ``bsdtar`` (Debian/Ubuntu package
``libarchive-tools``).
"""

from __future__ import annotations

import http.client
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm.auto import tqdm

from seglib.data.cache import cache_dir
from seglib.environ import progress_disabled
from seglib.errors import PH2Error

PH2_URL = "https://www.dropbox.com/s/k88qukc20ljnbuo/PH2Dataset.rar?dl=1"
"""The official PH2 archive (RAR, ~110 MB), as linked from the PH2 page of the University of Porto
(https://www.fc.up.pt/addi/ph2%20database.html). Override per call with ``fetch_ph2(url=...)`` or
for the whole process with env ``SEGLIB_PH2_URL``."""

IMAGES_DIR = "PH2 Dataset images"
"""Name of the official folder that holds the ``IMDnnn`` case folders."""

_CASE = re.compile(r"IMD\d+")
_RAR_MAGIC = b"Rar!\x1a\x07"
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # Python without tar filters: none
_EXTRACT_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    lzma.LZMAError,
    zlib.error,
    OSError,
)
_RAR_TOOLS = "unrar or bsdtar (Debian/Ubuntu: apt install unrar, or apt install libarchive-tools)"


# --- layout ----------------------------------------------------------------------------------

ARCHIVE_HINT = "download or copy it again (an interrupted copy is incomplete)"


def is_case_dir(path: Path) -> bool:
    """A PH2 case folder: a directory named ``IMD`` + digits."""
    return _CASE.fullmatch(path.name) is not None and path.is_dir()


def _subdirs(folder: Path) -> list[Path]:
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return []
    return [c for c in children if c.is_dir() and not c.name.startswith(".")]


def find_images_dir(folder: Path, depth: int = 2) -> Path:
    """The folder that holds the ``IMDnnn`` case folders: ``folder`` itself or a folder up to
    ``depth`` levels below it (``PH2Dataset/PH2 Dataset images``). Hidden folders are skipped."""
    folder = Path(folder)
    level = [folder]
    for _ in range(depth + 1):
        for d in level:
            if d.name == IMAGES_DIR or any(is_case_dir(c) for c in _subdirs(d)):
                return d
        level = [c for d in level for c in _subdirs(d)]
    raise PH2Error(
        f"{folder}: no PH2 case folders (IMDnnn) here or in a '{IMAGES_DIR}' folder below it"
    )


def dataset_root(folder: Path) -> Path:
    """The dataset root under ``folder``: the folder that contains ``PH2 Dataset images``
    (or the case folders' parent when that is named otherwise)."""
    images = find_images_dir(folder)
    return images.parent if images.name == IMAGES_DIR else images


# --- archives --------------------------------------------------------------------------------


def archive_kind(path: Path) -> str:
    """``"rar"``, ``"zip"`` or ``"tar"``, from the file's content."""
    with open(path, "rb") as f:
        head = f.read(len(_RAR_MAGIC))
    if not head:
        raise PH2Error(f"{path}: empty file (0 bytes), not an archive")
    if head == _RAR_MAGIC:
        return "rar"
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        pass
    raise PH2Error(f"{path}: not a RAR, ZIP or TAR archive, or a corrupt one; {ARCHIVE_HINT}")


def archive_key(path: Path) -> str:
    """Cache key of an archive: its name, size and modification time."""
    st = Path(path).stat()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).name)
    return f"{name}-{st.st_size}-{st.st_mtime_ns}"


def _unsafe(archive: Path, name: str, why: str) -> PH2Error:
    return PH2Error(
        f"{archive}: refusing to extract member {name!r}: {why}; the archive is unsafe, get the "
        "data from its official source"
    )


def _check_name(archive: Path, name: str) -> None:
    """Refuse a member path that is absolute or climbs out with ``..``."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive or ".." in parts:
        raise _unsafe(archive, name, "its path would land outside the destination")


def _inside(dest: str, path: str) -> bool:
    return path == dest or path.startswith(dest.rstrip(os.sep) + os.sep)


def _check_tar_member(archive: Path, dest: Path, m: tarfile.TarInfo) -> tarfile.TarInfo:
    """Refuse a member whose final path, or whose link's final target, leaves ``dest``.

    Paths are resolved with ``os.path.realpath`` against what is on disk when the member is
    checked, i.e. after the members before it were extracted: a chain of links (``a`` -> ``.``,
    then ``a/b`` -> ``..``) is followed as the filesystem will follow it, not as text. Sound on
    its own, so Pythons without ``filter="data"`` (before 3.12 / 3.11.4) are as safe."""
    _check_name(archive, m.name)
    root = os.path.realpath(dest)
    name = m.name.replace("\\", "/")
    where = os.path.realpath(os.path.join(root, name))
    if not _inside(root, where):
        raise _unsafe(archive, m.name, "its path leads outside the destination through a link")
    if m.issym():
        parent = os.path.realpath(os.path.join(root, posixpath.dirname(name)))
        target = os.path.realpath(os.path.join(parent, m.linkname))
        if os.path.isabs(m.linkname) or not _inside(root, target):
            raise _unsafe(archive, m.name, f"symlink to {m.linkname!r} points outside")
    elif m.islnk():  # a hard link's target is relative to the archive root
        target = os.path.realpath(os.path.join(root, m.linkname))
        if os.path.isabs(m.linkname) or not _inside(root, target):
            raise _unsafe(archive, m.name, f"hard link to {m.linkname!r} points outside")
    elif not (m.isfile() or m.isdir()):
        raise _unsafe(archive, m.name, "not a regular file, folder or link")
    if not _HAS_DATA_FILTER:  # what filter="data" does to modes: no setuid/setgid/sticky bits
        m.mode &= 0o755
    return m


def _extract_tar(archive: Path, dest: Path) -> None:
    # One streaming pass: each member is checked just before it is written, against the links
    # already extracted; filter="data" (where Python has it) is a second, independent guard.
    extra = {"filter": "data"} if _HAS_DATA_FILTER else {}
    with tarfile.open(archive, "r:*") as tf:
        tf.extractall(dest, members=(_check_tar_member(archive, dest, m) for m in tf), **extra)


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            _check_name(archive, name)
        zf.extractall(dest)


def _extract_rar(archive: Path, dest: Path) -> None:
    try:
        import rarfile  # imported lazily: only RAR input needs it
    except ImportError:
        raise PH2Error(
            f"{archive}: extracting RAR needs the Python package rarfile (pip install rarfile) "
            f"and {_RAR_TOOLS} on PATH"
        ) from None

    try:
        with rarfile.RarFile(archive, errors="strict") as rf:
            for name in rf.namelist():
                _check_name(archive, name)
            rf.extractall(dest)  # rarfile itself refuses symlinks that point outside
    except rarfile.RarCannotExec as e:
        raise PH2Error(f"{archive}: extracting RAR needs {_RAR_TOOLS} on PATH ({e})") from e
    except rarfile.BadSymLinkError as e:
        raise PH2Error(
            f"{archive}: refusing to extract a link that points outside ({e}); the archive is "
            "unsafe, get the data from its official source"
        ) from e
    except rarfile.Error as e:
        raise PH2Error(f"{archive}: corrupt or unreadable RAR archive ({e}); {ARCHIVE_HINT}") from e


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract ``archive`` (RAR, ZIP or TAR) into the folder ``dest``, refusing unsafe members.
    Raises PH2Error naming the archive for an unsafe member or a corrupt archive."""
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    extract = {"rar": _extract_rar, "zip": _extract_zip, "tar": _extract_tar}[kind]
    dest.mkdir(parents=True, exist_ok=True)
    try:
        extract(archive, dest)
    except _FILTER_ERROR as e:
        raise _unsafe(archive, e.tarinfo.name, str(e)) from e
    except _EXTRACT_ERRORS as e:
        raise PH2Error(
            f"{archive}: cannot extract {kind} archive ({type(e).__name__}: {e}); {ARCHIVE_HINT}"
        ) from e


def extract_cached(archive: Path) -> Path:
    """Extract ``archive`` once into ``cache_dir()/extracted/<name-size-mtime>`` and return that
    folder. Extraction goes to a temporary folder renamed when complete, so an interrupted
    extraction is never taken for a finished one; nothing is written beside the archive."""
    final = cache_dir() / "extracted" / archive_key(archive)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        extract_archive(archive, tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():  # else another process finished first: use its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- download --------------------------------------------------------------------------------


class _Interrupted(Exception):
    """A download attempt ended early; the partial file is kept for resuming."""


def _request(url: str, offset: int):
    headers = {"User-Agent": "seglib"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)


def _download_once(url: str, part: Path, progress: bool | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    try:
        resp = _request(url, have)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is stale: restart from zero
            part.unlink()
            raise _Interrupted("server refused the resume range") from e
        raise PH2Error(f"{url}: HTTP {e.code} {e.reason}") from e
    with resp:
        start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
        if resp.status == 206 and (not start or int(start[1]) != have):
            part.unlink(missing_ok=True)
            raise _Interrupted("server answered another range than asked: restarting from zero")
        if resp.status != 206:
            have = 0  # the server sent the whole file: restart from zero
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length else None
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.stem,
                   disable=progress_disabled(progress))  # fmt: skip
        with open(part, "ab" if have else "wb") as f, bar:
            while chunk := resp.read(1 << 16):
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Interrupted(f"got {size} of {total} bytes")


def download(url: str, path: Path, *, retries: int = 2, progress: bool | None = None) -> Path:
    """Download ``url`` to ``path`` through ``<path>.part``, renamed when complete (checked
    against Content-Length when the server sends one). An interrupted download resumes with an
    HTTP Range request (from zero if the server ignores it), up to ``retries`` more times in this
    call and again in a later call. An existing ``path`` is returned without any request."""
    path = Path(path)
    if path.is_file():
        return path
    part = path.with_name(path.name + ".part")
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, progress)
            break
        except (_Interrupted, OSError, http.client.HTTPException) as e:
            if attempt == retries:
                got = part.stat().st_size if part.exists() else 0
                raise PH2Error(
                    f"{url}: download interrupted ({type(e).__name__}: {e}); {got} bytes kept "
                    f"in {part}, call again to resume"
                ) from e
    os.replace(part, path)
    return path


def _file_name(url: str) -> str:
    return Path(urllib.parse.urlparse(url).path).name or "PH2Dataset.rar"


def fetch_ph2(
    dest: Path, url: str | None = None, *, retries: int = 2, progress: bool | None = None
) -> Path:
    """Download and extract PH2 into ``dest``; return the dataset root (accepted by load_ph2).

    ``url`` defaults to env ``SEGLIB_PH2_URL``, else :data:`PH2_URL`. Idempotent: when ``dest``
    already holds an extracted dataset no request is made; a downloaded archive is kept in
    ``dest`` and reused; an interrupted download resumes (see :func:`download`). The official
    archive is a RAR: extracting it needs ``unrar`` or ``bsdtar`` (libarchive-tools) on PATH.
    """
    dest = Path(dest).expanduser()
    if dest.is_dir():
        try:
            return dataset_root(dest)
        except PH2Error:
            pass
    url = url or os.environ.get("SEGLIB_PH2_URL") or PH2_URL
    dest.mkdir(parents=True, exist_ok=True)
    archive = download(url, dest / _file_name(url), retries=retries, progress=progress)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            extract_archive(archive, tmp)
        except PH2Error as e:
            raise PH2Error(f"{e}; the archive is kept, delete it to download again") from e
        entries = sorted(tmp.iterdir())
        clashes = [dest / e.name for e in entries if (dest / e.name).exists()]
        if clashes:
            raise PH2Error(f"{clashes[0]}: already exists; remove it or pick another dest")
        for entry in entries:
            os.replace(entry, dest / entry.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dataset_root(dest)
