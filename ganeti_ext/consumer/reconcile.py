"""`snf-events reconcile`: compare the state database with Ganeti, which is the truth.

`ganeti_instances` turns RAPI's /2/instances?bulk=1 into comparable records and `diff`
compares them with the database (both pure); `fix` writes Ganeti's view into the
database. Three kinds of findings, as Synnefo's reconciliation has:
- stale: in both, but the database's state, NICs or disks differ from Ganeti's;
- orphan: in Ganeti, unknown to (or deleted in) the database;
- unsynced: in the database as alive, gone from Ganeti (deleted behind our back).
An instance whose create job is still running is not judged (it is being built).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ganeti_ext.consumer import state
from ganeti_ext.errors import GanetiExtError
from ganeti_ext.events.jobfile import FINAL_STATUSES

STALE = "stale"
ORPHAN = "orphan"
UNSYNCED = "unsynced"

# The NIC fields both sides know; the rest (mode, link, firewall) are configuration the
# database may know better than RAPI shows.
_NIC_COMPARED = ("mac", "ip", "network")


class RapiError(GanetiExtError):
    """RAPI could not be reached or answered with an error."""


@dataclass(frozen=True)
class GanetiInstance:
    name: str
    state: str | None  # STARTED / STOPPED, None when Ganeti cannot tell (node down)
    status: str  # Ganeti's own: running, ADMIN_down, ERROR_nodedown, ...
    admin_state: str | None
    nics: list[dict[str, Any]]
    disks: list[dict[str, Any]]
    tags: list[str]
    hvparams: dict[str, Any]
    beparams: dict[str, Any]


@dataclass(frozen=True)
class Finding:
    kind: str  # STALE, ORPHAN or UNSYNCED
    name: str
    differences: tuple[str, ...] = ()
    ganeti: GanetiInstance | None = None

    def describe(self) -> str:
        if self.kind == ORPHAN:
            return f"orphan {self.name}: in Ganeti ({self.ganeti.status}), not in the database"
        if self.kind == UNSYNCED:
            return f"unsynced {self.name}: in the database, not in Ganeti"
        return f"stale {self.name}: " + "; ".join(self.differences)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0

    def of_kind(self, kind: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]

    def summary(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            STALE: len(self.of_kind(STALE)),
            ORPHAN: len(self.of_kind(ORPHAN)),
            UNSYNCED: len(self.of_kind(UNSYNCED)),
        }


def _column(entry: Mapping[str, Any], key: str, count: int) -> list[Any]:
    values = entry.get(key)
    if not isinstance(values, list):
        return [None] * count
    return list(values) + [None] * (count - len(values))


def ganeti_state(entry: Mapping[str, Any]) -> str | None:
    """STARTED or STOPPED from RAPI's oper_state; None when the node cannot tell."""
    status = str(entry.get("status") or "")
    if status in ("ERROR_nodedown", "ERROR_nodeoffline"):
        return None
    oper_state = entry.get("oper_state")
    if oper_state is None:
        return None
    return state.STARTED if oper_state else state.STOPPED


def ganeti_instance(entry: Mapping[str, Any]) -> GanetiInstance:
    """One element of /2/instances?bulk=1 as a comparable record."""
    macs = entry.get("nic.macs") or []
    count = len(macs)
    nics = [
        {
            "name": name,
            "network": network,
            "ip": ip,
            "mac": mac,
            "mode": mode,
            "link": link,
            "uuid": uuid,
        }
        for name, network, ip, mac, mode, link, uuid in zip(
            _column(entry, "nic.names", count),
            _column(entry, "nic.networks.names", count),
            _column(entry, "nic.ips", count),
            macs,
            _column(entry, "nic.modes", count),
            _column(entry, "nic.links", count),
            _column(entry, "nic.uuids", count),
            strict=True,
        )
    ]
    sizes = entry.get("disk.sizes") or []
    disks = [
        {"name": name, "size": size, "uuid": uuid}
        for name, size, uuid in zip(
            _column(entry, "disk.names", len(sizes)),
            sizes,
            _column(entry, "disk.uuids", len(sizes)),
            strict=True,
        )
    ]
    return GanetiInstance(
        name=str(entry["name"]),
        state=ganeti_state(entry),
        status=str(entry.get("status") or ""),
        admin_state=entry.get("admin_state"),
        nics=nics,
        disks=disks,
        tags=sorted(str(tag) for tag in entry.get("tags") or []),
        hvparams=dict(entry.get("hvparams") or {}),
        beparams=dict(entry.get("beparams") or {}),
    )


def ganeti_instances(bulk: Iterable[Mapping[str, Any]]) -> dict[str, GanetiInstance]:
    return {str(entry["name"]): ganeti_instance(entry) for entry in bulk}


def _nic_key(nic: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(nic.get(key) or "") for key in _NIC_COMPARED)


def _disk_sizes(disks: Sequence[Mapping[str, Any]]) -> list[Any]:
    return [disk.get("size") for disk in disks]


def _being_built(row: state.Instance) -> bool:
    return row.state == state.BUILD and row.last_status not in FINAL_STATUSES


def compare(row: state.Instance, ganeti: GanetiInstance) -> tuple[str, ...]:
    """How the database's view of one instance differs from Ganeti's."""
    differences = []
    if ganeti.state is not None and row.state != ganeti.state and not _being_built(row):
        differences.append(f"state {row.state} in the database, {ganeti.state} in Ganeti")
    if sorted(map(_nic_key, row.nics)) != sorted(map(_nic_key, ganeti.nics)):
        shown = ", ".join("/".join(_nic_key(nic)) for nic in ganeti.nics) or "none"
        differences.append(f"NICs differ (Ganeti: {shown})")
    if _disk_sizes(row.disks) != _disk_sizes(ganeti.disks) and not _being_built(row):
        differences.append(
            f"disk sizes {_disk_sizes(row.disks)} in the database, "
            f"{_disk_sizes(ganeti.disks)} in Ganeti"
        )
    return tuple(differences)


def diff(rows: Iterable[state.Instance], ganeti: Mapping[str, GanetiInstance]) -> Report:
    """Findings for every instance known to either side (rows: including deleted ones)."""
    report = Report()
    known = {row.name: row for row in rows}
    for name in sorted(set(known) | set(ganeti)):
        row = known.get(name)
        live = ganeti.get(name)
        report.checked += 1
        if live is None:
            if row is not None and not row.deleted and not _being_built(row):
                report.findings.append(Finding(UNSYNCED, name))
        elif row is None or row.deleted:
            report.findings.append(Finding(ORPHAN, name, ganeti=live))
        else:
            differences = compare(row, live)
            if differences:
                report.findings.append(Finding(STALE, name, differences, ganeti=live))
    return report


def fix(db: state.StateDB, report: Report) -> None:
    """Make the database agree with Ganeti for every finding."""
    for finding in report.findings:
        if finding.kind == UNSYNCED:
            db.upsert_instance(finding.name, state=state.DESTROYED, deleted=1)
            continue
        live = finding.ganeti
        assert live is not None
        db.upsert_instance(
            finding.name,
            state=live.state or state.UNKNOWN,
            ganeti_status=live.admin_state,
            nics=[{key: nic.get(key) for key in state.NIC_KEYS} for nic in live.nics],
            disks=live.disks,
            tags=live.tags,
            hvparams=live.hvparams,
            beparams=live.beparams,
            deleted=0,
            error=None,
        )


# -- RAPI ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RapiClient:
    """A minimal RAPI client: HTTPS, basic auth, JSON."""

    url: str
    user: str
    password: str
    ca_file: Path | None = None
    insecure: bool = False
    timeout: float = 60.0

    def _context(self) -> ssl.SSLContext:
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ca_file is not None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            # The cluster's certificate is self-signed and pinned by --ca-file; its
            # subject is the cluster name, not the address RAPI is reached by.
            context.check_hostname = False
            # Python 3.13 (Debian 13) turns on RFC 5280's strict checks by default, and
            # Ganeti's self-made certificate lacks the CA extensions they require
            # ("invalid CA certificate"): it is trusted as pinned, not as a CA.
            context.verify_flags &= ~ssl.VERIFY_X509_STRICT
            return context
        return ssl.create_default_context()

    def get(self, path: str) -> Any:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            raise RapiError(f"RAPI URL must be https://host[:port], got {self.url!r}")
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port or 5080, context=self._context(), timeout=self.timeout
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except ssl.SSLCertVerificationError as err:
            raise RapiError(
                f"RAPI at {self.url}: certificate not trusted ({err.verify_message}); "
                "give the cluster's certificate with --ca-file, or --insecure"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            raise RapiError(f"RAPI at {self.url}: {err}") from None
        finally:
            connection.close()
        if response.status == 401:
            raise RapiError(f"RAPI at {self.url}: user {self.user!r} was refused (401)")
        if response.status >= 400:
            raise RapiError(f"RAPI GET {path}: HTTP {response.status}: {data[:200]!r}")
        try:
            return json.loads(data)
        except ValueError:
            raise RapiError(f"RAPI GET {path}: answer is not JSON") from None

    def instances(self) -> list[dict[str, Any]]:
        answer = self.get("/2/instances?bulk=1")
        if not isinstance(answer, list):
            raise RapiError("RAPI /2/instances?bulk=1 did not return a list")
        return answer


def read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise GanetiExtError(f"cannot read the RAPI password file {path}: {err.strerror}") from None
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise GanetiExtError(f"the RAPI password file {path} is empty")
    return password
