"""Fetch a dataset archive once (http, https or file URL), verify it and extract it safely."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from hpsearch.errors import DataError

ALLOWED_SCHEMES = ("http", "https", "file")
CHUNK = 1 << 20


def check_url(url: str) -> urllib.parse.ParseResult:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise DataError(f"data.url must be an http, https or file URL, but got {url=!r}; for a local folder "
                        f"of images use --set data.root=/path instead.")
    return parsed


def url_key(url: str, sha256: str | None = None) -> str:
    """The cache key of an archive: its URL, and its checksum when the recipe names one."""
    return hashlib.sha256(f"{url}#{(sha256 or '').lower()}".encode()).hexdigest()[:12]


def archive_name(url: str, sha256: str | None = None) -> str:
    name = Path(urllib.parse.unquote(check_url(url).path)).name or "archive"
    return f"{url_key(url, sha256)}-{name}"


def source_stamp(url: str) -> str:
    """What identifies the archive's current content without reading it: for a file URL its size and
    modification time (a replaced file is fetched again), else the URL alone."""
    parsed = check_url(url)
    if parsed.scheme == "file":
        try:
            st = os.stat(urllib.parse.unquote(parsed.path))
            return f"{url}\n{st.st_size}:{st.st_mtime_ns}\n"
        except OSError:
            pass
    return f"{url}\n"


class CorruptArchive(DataError):
    """The archive is truncated or not an archive at all."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``target`` through a temporary file renamed only once the download is complete."""
    from tqdm.auto import tqdm

    check_url(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {target.name}",
                      disable=not progress, leave=False) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
            if total is not None and out.tell() != total:
                raise DataError(f"Download of {url} stopped after {out.tell()} of {total} bytes; run again to retry.")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"Could not download {url}: {getattr(err, 'reason', err)}. Check the network, or download "
                        f"the archive yourself and pass --set data.url=file:///path/to/archive.tgz "
                        f"(or an extracted folder with --set data.root=...).") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def refuse_unsafe_name(archive: Path, name: str) -> None:
    """Archive members must be relative paths without ``..``: nothing may land outside the target."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(f"Refusing to extract {archive.name}: member {name!r} would land outside the target "
                        f"folder. The archive is unsafe or corrupt; get it from a trusted source.")


def extract(archive: Path, target: Path) -> Path:
    """Extract a tar or zip archive into ``target``; members escaping it (``..``, absolute, links) are refused."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    refuse_unsafe_name(archive, member.name)
                tar.extractall(tmp, filter="data")  # also refuses links and devices that point outside
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    refuse_unsafe_name(archive, member)
                zf.extractall(tmp)
        else:
            raise CorruptArchive(f"{archive} is truncated or corrupt (neither a tar nor a zip archive)")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error, zipfile.BadZipFile,
            gzip.BadGzipFile) as err:
        raise CorruptArchive(f"{archive} is truncated or corrupt ({type(err).__name__}: {err})") from None
    except tarfile.TarError as err:
        raise DataError(f"Refusing to extract {archive.name}: {err}.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


MACOS_ZIP_FOLDER = "__MACOSX"  # the resource forks a zip archive made on a Mac carries beside its files


def listed(path: Path) -> bool:
    """Whether a dataset's listing counts ``path``: not hidden (``.name``, macOS's ``._name`` resource forks
    that tar archives made on a Mac carry beside every file included) and not a zip's ``__MACOSX`` folder."""
    return not path.name.startswith(".") and path.name != MACOS_ZIP_FOLDER


def dataset_root(folder: Path) -> Path:
    """The folder holding the class subfolders: ``folder`` itself or its single top-level directory."""
    entries = [p for p in folder.iterdir() if listed(p)]
    dirs = [p for p in entries if p.is_dir()]
    if len(dirs) == 1 and all(p.is_file() for p in entries if p is not dirs[0]):
        inner = [p for p in dirs[0].iterdir() if p.is_dir()]
        if inner:
            return dirs[0]
    return folder


def fetch_dataset(url: str, cache: Path, sha256: str | None = None, progress: bool = True) -> Path:
    """Download (once) and extract (once) the archive at ``url``; return the folder of class subfolders.

    The cache is keyed by the URL and ``sha256``; when ``sha256`` is given the cached archive is checked
    against it on every use. A file URL whose file changed is fetched again. A truncated or corrupt cached
    archive is fetched once more before giving up.
    """
    name = archive_name(url, sha256)
    extracted = cache / "datasets" / name.split(".")[0]
    archive = cache / "downloads" / name
    stamp = source_stamp(url)
    marker = extracted / ".complete"
    current = marker.is_file() and marker.read_text() == stamp
    if current and (not sha256 or (archive.is_file() and sha256_of(archive) == sha256.lower())):
        return dataset_root(extracted)
    for attempt in (1, 2):
        if attempt == 2 or not current or not archive.is_file():
            download(url, archive, progress=progress)
        check_checksum(url, archive, sha256)
        extracted.parent.mkdir(parents=True, exist_ok=True)
        try:
            extract(archive, extracted)
            break
        except CorruptArchive as err:
            archive.unlink(missing_ok=True)
            if attempt == 2:
                raise DataError(f"{err}, twice: the file at {url} itself is damaged. Fetch a good copy and point "
                                f"data.url (or data.root, for an extracted folder) at it.") from None
    marker.write_text(stamp)
    return dataset_root(extracted)


def check_checksum(url: str, archive: Path, sha256: str | None) -> None:
    if not sha256:
        return
    actual = sha256_of(archive)
    if actual != sha256.lower():
        archive.unlink(missing_ok=True)
        raise DataError(f"Checksum mismatch for {url}: data.sha256 is {sha256} but the archive's is {actual}. "
                        f"Fix data.sha256 if the archive was replaced on purpose, else get the right archive.")
