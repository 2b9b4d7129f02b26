"""Fetch a dataset archive once (http, https or file URL), verify it and extract it safely."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
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


def url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def archive_name(url: str) -> str:
    name = Path(urllib.parse.unquote(check_url(url).path)).name or "archive"
    return f"{url_key(url)}-{name}"


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
            raise DataError(f"{archive} is neither a tar nor a zip archive (corrupt or incomplete download?); "
                            f"delete it and run again.")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except tarfile.TarError as err:
        raise DataError(f"Refusing to extract {archive.name}: {err}.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def dataset_root(folder: Path) -> Path:
    """The folder holding the class subfolders: ``folder`` itself or its single top-level directory."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    dirs = [p for p in entries if p.is_dir()]
    if len(dirs) == 1 and all(p.is_file() for p in entries if p is not dirs[0]):
        inner = [p for p in dirs[0].iterdir() if p.is_dir()]
        if inner:
            return dirs[0]
    return folder


def fetch_dataset(url: str, cache: Path, sha256: str | None = None, progress: bool = True) -> Path:
    """Download (once) and extract (once) the archive at ``url``; return the folder of class subfolders."""
    name = archive_name(url)
    extracted = cache / "datasets" / name.split(".")[0]
    marker = extracted / ".complete"
    if marker.is_file():
        return dataset_root(extracted)
    archive = cache / "downloads" / name
    if not archive.is_file():
        download(url, archive, progress=progress)
    if sha256 and sha256_of(archive) != sha256.lower():
        bad = archive.with_suffix(archive.suffix + ".bad")
        os.replace(archive, bad)
        raise DataError(f"Checksum mismatch for {url}: expected sha256 {sha256}, got {sha256_of(bad)}; "
                        f"the file was moved to {bad}. Run again to download it afresh.")
    extracted.parent.mkdir(parents=True, exist_ok=True)
    extract(archive, extracted)
    marker.write_text(url + "\n")
    return dataset_root(extracted)
