"""``bundle fetch`` against a local HTTP server with Range support serving real ISO 9660 images:
download and verification, skip when present, resume after an interruption, rejection of a
file whose digest does not match; manifest validation."""

import json

import pytest

from fleetforge.bundle.fetch import fetch
from fleetforge.bundle.manifest import BundleError, load_manifest
from tests.bundle.conftest import digests, make_iso, manifest_text


@pytest.fixture
def isos(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    return www, [make_iso(www / "alpha.iso", 2_500_000, "alpha"), make_iso(www / "beta.iso", 900_000, "beta")]


def write_manifest(tmp_path, base_url, isos, **override):
    entries = []
    for iso in isos:
        d = digests(iso)
        entries.append({"name": iso.name, "url": f"{base_url}/{iso.name}", **d, **override.get(iso.name, {})})
    path = tmp_path / "bundle.toml"
    path.write_text(manifest_text(entries))
    return load_manifest(path)


def test_fetch_verifies_indexes_and_skips_what_it_has(tmp_path, isos, serve):
    www, files = isos
    server = serve(www)
    manifest = write_manifest(tmp_path, server.url, files)
    bundle = tmp_path / "bundle"
    report = fetch(manifest, bundle, quiet=True)
    assert [(r.name, r.status) for r in report.results] == [("alpha.iso", "downloaded"), ("beta.iso", "downloaded")]
    assert report.fetched_bytes == sum(f.stat().st_size for f in files)
    index = json.loads((bundle / "index.json").read_text())["files"]
    for f in files:
        assert (bundle / f.name).read_bytes() == f.read_bytes()
        want = digests(f)
        got = index[f.name]
        assert (got["sha256"], got["sha512"], got["blake2b"], got["size_bytes"]) == (
            want["sha256"],
            want["sha512"],
            want["blake2b"],
            want["size"],
        )
    again = fetch(manifest, bundle, quiet=True)
    assert [r.status for r in again.results] == ["present", "present"] and again.fetched_bytes == 0
    assert len(server.requests("/alpha.iso")) == 1  # nothing asked of the server the second time


def test_an_interrupted_download_resumes_instead_of_restarting(tmp_path, isos, serve):
    www, files = isos
    alpha = files[0]
    server = serve(www, cut_after=700_000)  # the first response of each file breaks off
    manifest = write_manifest(tmp_path, server.url, [alpha])
    bundle = tmp_path / "bundle"
    first = fetch(manifest, bundle, quiet=True)
    assert first.results[0].status == "failed" and "run again to resume" in first.results[0].error
    assert (bundle / ".alpha.iso.part").stat().st_size == 700_000
    assert not (bundle / "alpha.iso").exists()
    second = fetch(manifest, bundle, quiet=True)
    assert second.results[0].status == "resumed"
    assert second.results[0].fetched_bytes == alpha.stat().st_size - 700_000
    responses = server.requests("/alpha.iso")
    assert [(status, first_byte) for status, first_byte, _, _ in responses] == [(200, 0), (206, 700_000)]
    assert sum(sent for *_, sent in responses) == alpha.stat().st_size  # across both runs: the file once
    assert (bundle / "alpha.iso").read_bytes() == alpha.read_bytes()


def test_a_corrupted_file_is_rejected_and_kept_aside(tmp_path, isos, serve):
    www, files = isos
    server = serve(www)
    wrong = digests(files[1])["sha256"]  # beta's digest for alpha's file: a corrupted download
    manifest = write_manifest(tmp_path, server.url, files[:1], **{"alpha.iso": {"sha256": wrong, "sha512": None}})
    bundle = tmp_path / "bundle"
    report = fetch(manifest, bundle, quiet=True)
    (result,) = report.results
    assert result.status == "failed" and result.error.startswith(f"sha256 mismatch: expected {wrong}")
    assert (bundle / "alpha.iso.rejected").exists() and not (bundle / "alpha.iso").exists()
    assert json.loads((bundle / "index.json").read_text())["files"] == {}


def test_a_file_changed_in_the_bundle_is_hashed_again_and_replaced(tmp_path, isos, serve):
    www, files = isos
    server = serve(www)
    manifest = write_manifest(tmp_path, server.url, files[1:])
    bundle = tmp_path / "bundle"
    fetch(manifest, bundle, quiet=True)
    (bundle / "beta.iso").write_bytes(b"x" * 900_000)  # same size, other bytes
    report = fetch(manifest, bundle, quiet=True)
    assert report.results[0].status == "downloaded"
    assert (bundle / "beta.iso").read_bytes() == files[1].read_bytes()
    assert (bundle / "beta.iso.rejected").read_bytes() == b"x" * 900_000


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"sha256": "abc"}, "iso 'a.iso': sha256: expected 64 hex digits, got 'abc'"),
        (
            {"url": "ftp://x/a.iso"},
            "iso 'a.iso': url: expected an http://, https:// or file:// URL, got 'ftp://x/a.iso'",
        ),
        ({"sha512": "00"}, "iso 'a.iso': sha512: expected 128 hex digits, got '00'"),
        ({"checksum": "x"}, "iso 'a.iso': checksum: unknown key (expected: name, url, sha256, sha512, blake2b, size)"),
        ({"size": -5}, "iso 'a.iso': size: Input should be greater than 0, got -5"),
        ({"name": "../etc/passwd"}, "iso '../etc/passwd': name: expected a file name of letters, digits"),
    ],
)
def test_manifest_errors_name_the_entry_and_key(tmp_path, entry, message):
    base = {"name": "a.iso", "url": "http://h/a.iso", "sha256": "0" * 64}
    path = tmp_path / "m.toml"
    path.write_text(manifest_text([{**base, **entry}]))
    with pytest.raises(BundleError) as err:
        load_manifest(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_duplicate_names_and_an_empty_manifest_are_errors(tmp_path):
    base = {"name": "a.iso", "url": "http://h/a.iso", "sha256": "0" * 64}
    path = tmp_path / "m.toml"
    path.write_text(manifest_text([base, base]))
    with pytest.raises(BundleError, match="iso 'a.iso': name: appears twice"):
        load_manifest(path)
    path.write_text("")
    with pytest.raises(BundleError, match=r"expected at least one \[\[iso\]\] table"):
        load_manifest(path)
