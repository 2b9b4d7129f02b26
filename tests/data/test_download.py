from __future__ import annotations

import functools
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hpsearch.data import DataConfig, make_source, prepare_split
from hpsearch.data.download import download, extract, fetch_dataset, sha256_of
from hpsearch.errors import DataError

SHARED_ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "data" / "flower_photos_s160.tgz"


def jpeg_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 30, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_archive(path: Path, classes=("daisy", "roses"), per_class=6, extra=()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        add_bytes(tar, "flower_photos/LICENSE.txt", b"CC-BY")
        for c, name in enumerate(classes):
            for i in range(per_class):
                add_bytes(tar, f"flower_photos/{name}/{i}.jpg", jpeg_bytes(c * 100 + i))
        for name, data in extra:
            add_bytes(tar, name, data)
    return path


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path.startswith("/truncated"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            return
        super().do_GET()


@pytest.fixture
def http_server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    CountingHandler.requests = []
    handler = functools.partial(CountingHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_from_file_url_extracts_the_class_folders(tmp_path):
    archive = make_archive(tmp_path / "flowers.tgz")
    root = fetch_dataset(archive.as_uri(), tmp_path / "cache", progress=False)
    assert root.name == "flower_photos"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["daisy", "roses"]
    assert not list((tmp_path / "cache" / "downloads").glob("*.part"))


def test_fetch_over_http_downloads_once(tmp_path, http_server):
    folder, base = http_server
    make_archive(folder / "flowers.tgz")
    url = f"{base}/flowers.tgz"
    first = fetch_dataset(url, tmp_path / "cache", progress=False)
    second = fetch_dataset(url, tmp_path / "cache", progress=False)
    assert first == second and CountingHandler.requests == ["/flowers.tgz"]
    config = DataConfig(source="folder", url=url, cache_dir=str(tmp_path / "cache"), classes=("daisy", "roses"),
                        min_images=12)
    listing = make_source(config).list()
    assert len(listing.ids) == 12 and listing.classes == ("daisy", "roses")


def test_interrupted_download_leaves_no_half_file(tmp_path, http_server):
    _, base = http_server
    target = tmp_path / "downloads" / "archive.tgz"
    with pytest.raises(DataError, match="Could not download|stopped after"):
        download(f"{base}/truncated.tgz", target, progress=False)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_unreachable_url_says_how_to_work_offline(tmp_path, http_server):
    _, base = http_server
    with pytest.raises(DataError, match="data.url=file://"):
        fetch_dataset(f"{base}/missing.tgz", tmp_path / "cache", progress=False)


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/hpsearch-evil-absolute.txt"])
def test_path_traversal_is_refused(tmp_path, member):
    archive = make_archive(tmp_path / "bad.tgz", extra=[(member, b"owned")])
    target = tmp_path / "out" / "data"
    target.parent.mkdir()
    with pytest.raises(DataError, match="Refusing to extract"):
        extract(archive, target)
    assert not (tmp_path / "out" / "evil.txt").exists() and not target.exists()
    assert not Path("/tmp/hpsearch-evil-absolute.txt").exists()


def test_link_pointing_outside_is_refused(tmp_path):
    archive = tmp_path / "link.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("flower_photos/daisy/link.jpg")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="Refusing to extract"):
        extract(archive, tmp_path / "data")


def test_checksum_mismatch_and_bad_scheme(tmp_path):
    archive = make_archive(tmp_path / "flowers.tgz")
    with pytest.raises(DataError, match="Checksum mismatch"):
        fetch_dataset(archive.as_uri(), tmp_path / "cache", sha256="0" * 64, progress=False)
    good = fetch_dataset(archive.as_uri(), tmp_path / "cache2", sha256=sha256_of(archive), progress=False)
    assert good.is_dir()
    with pytest.raises(DataError, match="http, https or file"):
        fetch_dataset("ftp://example.org/a.tgz", tmp_path / "cache", progress=False)


def test_wrong_classes_or_too_few_images_fail_verification(tmp_path):
    archive = make_archive(tmp_path / "flowers.tgz")
    base = dict(source="folder", url=archive.as_uri(), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match="expects"):
        make_source(DataConfig(**base, classes=("daisy", "tulips"))).list()
    with pytest.raises(DataError, match="fewer than data.min_images"):
        make_source(DataConfig(**base, min_images=100)).list()


def test_root_overrides_url(tmp_path):
    archive = make_archive(tmp_path / "flowers.tgz")
    root = fetch_dataset(archive.as_uri(), tmp_path / "cache", progress=False)
    config = DataConfig(source="folder", root=str(root), url="http://127.0.0.1:9/never-fetched.tgz")
    split, classes = prepare_split(config, 0, tmp_path / "run")
    assert classes == ("daisy", "roses") and len(split) == 12


@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="needs ../shared/data/flower_photos_s160.tgz")
def test_the_real_flowers_archive_through_a_file_url(tmp_path):
    config = DataConfig(source="folder", url=SHARED_ARCHIVE.as_uri(), cache_dir=str(tmp_path),
                        classes=("daisy", "dandelion", "roses", "sunflowers", "tulips"), min_images=3000)
    listing = make_source(config).list()
    assert len(listing.ids) == 3303
    assert np.bincount(listing.labels).tolist() == [570, 808, 577, 629, 719]


def test_a_new_archive_behind_a_cached_file_url_is_seen(tmp_path):
    """Issue 16, defect 4: the cache used to be keyed by URL only, so a replaced archive was never read."""
    archive = make_archive(tmp_path / "flowers.tgz", classes=("daisy", "roses"))
    first = fetch_dataset(archive.as_uri(), tmp_path / "cache", progress=False)
    assert sorted(p.name for p in first.iterdir() if p.is_dir()) == ["daisy", "roses"]
    make_archive(archive, classes=("daisy", "roses", "tulips"))  # replaced in place, same URL
    second = fetch_dataset(archive.as_uri(), tmp_path / "cache", progress=False)
    assert sorted(p.name for p in second.iterdir() if p.is_dir()) == ["daisy", "roses", "tulips"]


def test_a_given_checksum_is_checked_on_every_use_of_the_cache(tmp_path):
    archive = make_archive(tmp_path / "flowers.tgz")
    good = sha256_of(archive)
    fetch_dataset(archive.as_uri(), tmp_path / "cache", sha256=good, progress=False)
    make_archive(archive, classes=("daisy", "roses", "tulips"))
    with pytest.raises(DataError, match="Checksum mismatch.*data.sha256 is"):  # the old sha256 no longer fits
        fetch_dataset(archive.as_uri(), tmp_path / "cache", sha256=good, progress=False)
    with pytest.raises(DataError, match="Checksum mismatch"):  # nor does a made-up one, cache or not
        fetch_dataset(archive.as_uri(), tmp_path / "cache", sha256="0" * 64, progress=False)
    fresh = fetch_dataset(archive.as_uri(), tmp_path / "cache", sha256=sha256_of(archive), progress=False)
    assert (fresh / "tulips").is_dir()


def test_a_truncated_cached_archive_is_fetched_again(tmp_path):
    """A half-copied archive left in the cache no longer fails every rerun the same way."""
    archive = make_archive(tmp_path / "flowers.tgz")
    from hpsearch.data.download import archive_name

    cached = tmp_path / "cache" / "downloads" / archive_name(archive.as_uri())
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive.read_bytes()[:300])  # as if a copy had been cut short
    root = fetch_dataset(archive.as_uri(), tmp_path / "cache", progress=False)
    assert (root / "daisy").is_dir()


def make_zip(path: Path, classes=("daisy", "roses"), per_class=6) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for c, name in enumerate(classes):
            for i in range(per_class):
                zf.writestr(f"flower_photos/{name}/{i}.jpg", jpeg_bytes(c * 100 + i))
    return path


def test_a_corrupt_cached_zip_is_fetched_again_and_a_corrupt_source_zip_is_one_clear_error(tmp_path):
    from hpsearch.data.download import archive_name

    archive = make_zip(tmp_path / "flowers.zip")
    cached = tmp_path / "cache" / "downloads" / archive_name(archive.as_uri())
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive.read_bytes()[: len(archive.read_bytes()) // 2])  # central directory cut off
    root = fetch_dataset(archive.as_uri(), tmp_path / "cache", progress=False)
    assert (root / "daisy").is_dir() and len(list((root / "roses").iterdir())) == 6
    bad = tmp_path / "bad.zip"
    data = bytearray(archive.read_bytes())
    data[100:400] = b"\0" * 300  # a damaged member: the zip opens, its data does not
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or corrupt"):
        fetch_dataset(bad.as_uri(), tmp_path / "cache2", progress=False)


@pytest.mark.parametrize("content", [b"", b"not an archive at all", None])
def test_a_damaged_archive_at_the_source_is_one_clear_error(tmp_path, content):
    bad = tmp_path / "flowers.tgz"
    bad.write_bytes(make_archive(tmp_path / "good.tgz").read_bytes()[:500] if content is None else content)
    with pytest.raises(DataError, match="truncated or corrupt.*twice: the file at .* itself is damaged"):
        fetch_dataset(bad.as_uri(), tmp_path / "cache", progress=False)


APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "  # a resource fork's header, not an image


def test_archives_made_on_a_mac_list_only_their_images(tmp_path):
    """A tar made on a Mac carries a ``._name`` resource fork beside every file, and a zip a ``__MACOSX`` folder
    beside the dataset's: neither is a class, an image or an unreadable file."""
    from hpsearch.evaluation.predict import image_files

    tar = make_archive(tmp_path / "mac.tgz", extra=[(f"flower_photos/{c}/._{i}.jpg", APPLE_DOUBLE)
                                                    for c in ("daisy", "roses") for i in range(6)])
    zipped = make_zip(tmp_path / "mac.zip")
    with zipfile.ZipFile(zipped, "a") as zf:
        for name in ("__MACOSX/._flower_photos", "__MACOSX/flower_photos/daisy/._0.jpg"):
            zf.writestr(name, APPLE_DOUBLE)
    for archive in (tar, zipped):
        config = DataConfig(source="folder", url=archive.as_uri(), cache_dir=str(tmp_path / f"cache-{archive.name}"))
        source = make_source(config)
        listing = source.list()
        assert source.root.name == "flower_photos" and listing.classes == ("daisy", "roses")
        assert len(listing.ids) == 12 and not any("._" in i for i in listing.ids)
        assert source.decode(list(listing.ids)).shape[0] == 12  # nothing unreadable (decode raises otherwise)
    extracted = source.root.parent
    assert (extracted / "__MACOSX").is_dir()  # predict on the extracted folder skips the forks too
    assert [p.name for p in image_files([extracted])] == [f"{i}.jpg" for i in range(6)] * 2
