"""Write a small Trivy vulnerability database (bbolt file, Trivy DB schema v2) for tests.

Trivy's real DB cannot be downloaded in the test environment, so tests build their own.
The bbolt writer below is write-once: it lays out a fresh file in a single pass instead of
implementing transactions, page reuse or rebalancing, which a reader never needs to see.
Format reference: go.etcd.io/bbolt (internal/common/page.go, meta.go; bucket.go).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Union

PAGE_SIZE = 4096
_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
_BRANCH_ELEMENT = struct.Struct("<IIQ")  # pos, ksize, pgid
_BUCKET_HEADER = struct.Struct("<QQ")  # root pgid, sequence
# magic, version, page size, flags, root bucket (root, sequence), freelist, pgid, txid;
# the uint64 checksum that follows is computed over exactly these 56 bytes.
_META = struct.Struct("<IIIIQQQQQ")

_BRANCH_PAGE, _LEAF_PAGE, _META_PAGE, _FREELIST_PAGE = 0x01, 0x02, 0x04, 0x10
_BUCKET_LEAF_FLAG = 0x01
_MAGIC = 0xED0CDAED
_BOLT_VERSION = 2
_FREELIST_PGID = 2
_FIRST_DATA_PGID = 3

# A bucket maps keys to values (bytes) or to nested buckets (dicts).
BoltTree = Mapping[bytes, Union["BoltTree", bytes]]

TRIVY_DB_SCHEMA_VERSION = 2
# Trivy reads the severity for a finding from VendorSeverity[<data-source ID>].
_SEVERITY_LEVELS = {"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
_OS_DATA_SOURCES = {
    "debian": (
        "debian",
        "Debian Security Tracker",
        "https://salsa.debian.org/security-tracker-team/security-tracker",
    ),
    "ubuntu": ("ubuntu", "Ubuntu CVE Tracker", "https://git.launchpad.net/ubuntu-cve-tracker"),
    "alpine": ("alpine", "Alpine Secdb", "https://secdb.alpinelinux.org/"),
}
PIP_BUCKET = "pip::GitHub Security Advisory pip"
_PIP_DATA_SOURCE = (
    "ghsa",
    "GitHub Security Advisory pip",
    "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Apip",
)


def _fnv1a_64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class _PageAllocator:
    """Hands out consecutive page ids and collects the encoded pages in file order."""

    def __init__(self) -> None:
        self.next_pgid = _FIRST_DATA_PGID
        self.pages: list[bytes] = []

    def add(self, flags: int, count: int, body: bytes) -> int:
        pgid = self.next_pgid
        npages = -(-(_PAGE_HEADER.size + len(body)) // PAGE_SIZE)  # ceil
        # Content larger than one page spills into "overflow" pages that follow it directly.
        header = _PAGE_HEADER.pack(pgid, flags, count, npages - 1)
        self.pages.append((header + body).ljust(npages * PAGE_SIZE, b"\0"))
        self.next_pgid += npages
        return pgid


def _leaf_page_body(items: Sequence[tuple[int, bytes, bytes]]) -> bytes:
    elements, data = bytearray(), bytearray()
    table_size = len(items) * _LEAF_ELEMENT.size
    for i, (flags, key, value) in enumerate(items):
        # bbolt stores `pos` relative to the element itself, not to the page start.
        pos = table_size - i * _LEAF_ELEMENT.size + len(data)
        elements += _LEAF_ELEMENT.pack(flags, pos, len(key), len(value))
        data += key + value
    return bytes(elements + data)


def _branch_page_body(children: Sequence[tuple[bytes, int]]) -> bytes:
    elements, data = bytearray(), bytearray()
    table_size = len(children) * _BRANCH_ELEMENT.size
    for i, (key, pgid) in enumerate(children):
        pos = table_size - i * _BRANCH_ELEMENT.size + len(data)
        elements += _BRANCH_ELEMENT.pack(pos, len(key), pgid)
        data += key
    return bytes(elements + data)


def _chunk(sizes: Sequence[int], element_size: int) -> list[tuple[int, int]]:
    """Greedy (start, end) ranges so each page fits; a lone oversized item gets overflow pages."""
    ranges, start, used = [], 0, _PAGE_HEADER.size
    for i, size in enumerate(sizes):
        needed = element_size + size
        if i > start and used + needed > PAGE_SIZE:
            ranges.append((start, i))
            start, used = i, _PAGE_HEADER.size
        used += needed
    ranges.append((start, len(sizes)))
    return ranges


def _write_bucket(alloc: _PageAllocator, bucket: BoltTree) -> int:
    """Write a bucket's B+tree (children first) and return its root page id."""
    items: list[tuple[int, bytes, bytes]] = []
    for key in sorted(bucket):  # bbolt binary-searches pages, so keys must be byte-ordered
        value = bucket[key]
        if isinstance(value, bytes):
            items.append((0, key, value))
        else:
            # Never inline: a nested bucket always points at its own root page.
            root = _write_bucket(alloc, value)
            items.append((_BUCKET_LEAF_FLAG, key, _BUCKET_HEADER.pack(root, 0)))

    level: list[tuple[bytes, int]] = []
    ranges = _chunk([len(k) + len(v) for _, k, v in items], _LEAF_ELEMENT.size)
    for start, end in ranges:
        page_items = items[start:end]
        pgid = alloc.add(_LEAF_PAGE, len(page_items), _leaf_page_body(page_items))
        level.append((page_items[0][1] if page_items else b"", pgid))

    # Each branch element is keyed by the first key of the page it points to.
    while len(level) > 1:
        parents: list[tuple[bytes, int]] = []
        for start, end in _chunk([len(k) for k, _ in level], _BRANCH_ELEMENT.size):
            children = level[start:end]
            pgid = alloc.add(_BRANCH_PAGE, len(children), _branch_page_body(children))
            parents.append((children[0][0], pgid))
        level = parents
    return level[0][1]


def _meta_page(pgid: int, root: int, high_water_mark: int) -> bytes:
    txid = pgid  # bbolt puts the meta of transaction N on page N % 2
    fields = (_MAGIC, _BOLT_VERSION, PAGE_SIZE, 0, root, 0, _FREELIST_PGID, high_water_mark, txid)
    meta = _META.pack(*fields)
    # Readers reject a meta page whose checksum (FNV-1a over the fields before it) mismatches.
    meta += struct.pack("<Q", _fnv1a_64(meta))
    return (_PAGE_HEADER.pack(pgid, _META_PAGE, 0, 0) + meta).ljust(PAGE_SIZE, b"\0")


def write_bolt(path: Path, tree: BoltTree) -> None:
    """Write `tree` (top-level keys are buckets) as a fresh bbolt database file."""
    alloc = _PageAllocator()
    root = _write_bucket(alloc, tree)
    high_water_mark = alloc.next_pgid
    freelist = _PAGE_HEADER.pack(_FREELIST_PGID, _FREELIST_PAGE, 0, 0).ljust(PAGE_SIZE, b"\0")
    with path.open("wb") as f:
        f.write(_meta_page(0, root, high_water_mark))
        f.write(_meta_page(1, root, high_water_mark))
        f.write(freelist)
        for page in alloc.pages:
            f.write(page)


@dataclass(frozen=True)
class OsAdvisory:
    os_bucket: str  # "<os> <release>", e.g. "ubuntu 24.04", "debian 12", "alpine 3.20"
    source_package: str  # dpkg Source: / apk origin, not the binary package name
    vulnerability_id: str
    fixed_version: str  # "" means unfixed
    severity: str
    title: str


@dataclass(frozen=True)
class PipAdvisory:
    package: str
    vulnerability_id: str
    vulnerable_below: str
    severity: str
    title: str


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def _vulnerability(title: str, severity: str, source_id: str) -> bytes:
    return _json(
        {
            "Title": title,
            "Description": f"{title} (imagewright test fixture)",
            "Severity": severity.upper(),
            "VendorSeverity": {source_id: _SEVERITY_LEVELS[severity.upper()]},
            "References": ["https://example.invalid/imagewright-fixture"],
        }
    )


def _data_source(source: tuple[str, str, str]) -> bytes:
    source_id, name, url = source
    return _json({"ID": source_id, "Name": name, "URL": url})


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_trivy_db(
    cache_dir: Path,
    os_advisories: Sequence[OsAdvisory],
    pip_advisories: Sequence[PipAdvisory],
) -> Path:
    """Write <cache_dir>/db/trivy.db and metadata.json; return cache_dir.

    Scan with `--cache-dir <cache_dir> --skip-db-update --skip-java-db-update --offline-scan`.
    """
    tree: dict[bytes, dict] = {b"vulnerability": {}, b"data-source": {}}
    vulnerabilities, data_sources = tree[b"vulnerability"], tree[b"data-source"]

    for adv in os_advisories:
        family = adv.os_bucket.split(" ", 1)[0]
        source = _OS_DATA_SOURCES[family]
        advisory = {"FixedVersion": adv.fixed_version} if adv.fixed_version else {}
        bucket = tree.setdefault(adv.os_bucket.encode(), {})
        bucket.setdefault(adv.source_package.encode(), {})[adv.vulnerability_id.encode()] = _json(
            advisory
        )
        vulnerabilities[adv.vulnerability_id.encode()] = _vulnerability(
            adv.title, adv.severity, source[0]
        )
        data_sources[adv.os_bucket.encode()] = _data_source(source)

    for adv in pip_advisories:
        # Trivy looks packages up by their PEP 503-ish normalised name.
        name = adv.package.lower().replace("_", "-")
        advisory = {
            "PatchedVersions": [adv.vulnerable_below],
            "VulnerableVersions": [f"< {adv.vulnerable_below}"],
        }
        bucket = tree.setdefault(PIP_BUCKET.encode(), {})
        bucket.setdefault(name.encode(), {})[adv.vulnerability_id.encode()] = _json(advisory)
        vulnerabilities[adv.vulnerability_id.encode()] = _vulnerability(
            adv.title, adv.severity, _PIP_DATA_SOURCE[0]
        )
        data_sources[PIP_BUCKET.encode()] = _data_source(_PIP_DATA_SOURCE)

    db_dir = cache_dir / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    write_bolt(db_dir / "trivy.db", tree)
    now = datetime.now(UTC)
    metadata = {
        "Version": TRIVY_DB_SCHEMA_VERSION,
        # A past NextUpdate or zero DownloadedAt makes Trivy treat the DB as stale.
        "NextUpdate": _rfc3339(now + timedelta(days=365)),
        "UpdatedAt": _rfc3339(now),
        "DownloadedAt": _rfc3339(now),
    }
    (db_dir / "metadata.json").write_text(json.dumps(metadata))
    return cache_dir
