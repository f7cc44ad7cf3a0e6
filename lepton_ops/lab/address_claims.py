"""Which lab holds which address block on this machine, and which blocks are not free.

A lab claims its block when it comes up (a small file per block in a machine-wide
directory that a reboot empties: ``/run/lepton-ops/labs`` as root) and gives it back when
it goes down. A claim counts while the lab that wrote it still records that block in its
``lab.json`` in the same boot, so a lab that vanished without ``lab down`` does not hold
its block forever. Blocks with an address that ``/etc/hosts`` gives a name (Debian puts
the machine's hostname on 127.0.1.1) are never chosen: cutting such a node off would also
cut the machine's own name off.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from filelock import FileLock

from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.lab.layout import LabLayout
from lepton_ops.lab.processes import boot_id
from lepton_ops.lab.record import read_record
from lepton_ops.lab.topology import address_blocks, lab_nodes

HOSTS_FILE = Path("/etc/hosts")
LOCK_TIMEOUT_S = 30.0


CLAIMS_DIR_ENV = "LEPTON_OPS_LAB_CLAIMS_DIR"
MACHINE_CLAIMS_DIR = Path("/run/lepton-ops/labs")


def claims_dir() -> Path:
    """Where claims live: machine-wide for root, per user otherwise.

    ``LEPTON_OPS_LAB_CLAIMS_DIR`` overrides it (tests keep their labs' claims apart).
    """
    override = os.environ.get(CLAIMS_DIR_ENV)
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return MACHINE_CLAIMS_DIR
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path(tempfile.gettempdir()) / f"lepton-ops-{os.getuid()}"
    return base / "labs"


def named_addresses(hosts_file: Path = HOSTS_FILE) -> dict[str, str]:
    """Address -> the names ``hosts_file`` gives it."""
    found: dict[str, str] = {}
    try:
        lines = hosts_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) >= 2:
            found[words[0]] = " ".join(words[1:])
    return found


class AddressClaims:
    """The claims directory of this machine (``directory`` for tests).

    A user's labs claim in their own directory but also respect ``respected``: by
    default root's machine-wide claims, since every lab shares 127.0.1.0/24.
    """

    def __init__(
        self,
        directory: Path | None = None,
        hosts_file: Path = HOSTS_FILE,
        *,
        respected: tuple[Path, ...] | None = None,
    ) -> None:
        self.directory = directory or claims_dir()
        self.hosts_file = hosts_file
        if respected is None:
            # Only the default per-user directory; an explicit one (tests) stands alone.
            own_default = directory is None and not os.environ.get(CLAIMS_DIR_ENV)
            machine_wide = own_default and self.directory != MACHINE_CLAIMS_DIR
            respected = (MACHINE_CLAIMS_DIR,) if machine_wide else ()
        self.respected = respected

    def _path(self, first_address: str) -> Path:
        return self.directory / f"{first_address}.json"

    def _lock(self) -> FileLock:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        return FileLock(str(self.directory / ".lock"), timeout=LOCK_TIMEOUT_S)

    def holder(self, first_address: str) -> Path | None:
        """The state dir of the live lab holding the block (here, or in a respected
        directory), None when it is free."""
        for directory in (self.directory, *self.respected):
            held = _holder(directory / f"{first_address}.json", first_address)
            if held is not None:
                return held
        return None

    def named(self, first_address: str) -> list[str]:
        """The block's addresses that /etc/hosts names, as ``address (names)``."""
        names = named_addresses(self.hosts_file)
        return [
            f"{node.address} ({names[node.address]})"
            for node in lab_nodes(first_address)
            if node.address in names
        ]

    def claim(self, state_dir: Path, wanted: str | None) -> str:
        """Claim a block for the lab in ``state_dir``: ``wanted`` or the first free one."""
        state_dir = state_dir.resolve()
        with self._lock():
            if wanted is not None:
                self._check_usable(wanted, state_dir)
                chosen = wanted
            else:
                chosen = next(
                    (block for block in address_blocks() if self._usable(block, state_dir)), ""
                )
                if not chosen:
                    raise OperationFailed(
                        "every lab address block of 127.0.1.0/24 is taken or named in "
                        f"{self.hosts_file}: take a lab down first"
                    )
            claim = {"state_dir": str(state_dir), "boot_id": boot_id()}
            temporary = self._path(chosen).with_suffix(".tmp")
            temporary.write_text(json.dumps(claim) + "\n", encoding="utf-8")
            temporary.replace(self._path(chosen))
            return chosen

    def release(self, state_dir: Path, first_address: str) -> None:
        """Give the block back, if this lab holds it."""
        with self._lock():
            holder = self._claimant(first_address)
            if holder == state_dir.resolve():
                self._path(first_address).unlink(missing_ok=True)

    def _claimant(self, first_address: str) -> Path | None:
        try:
            claim = json.loads(self._path(first_address).read_text(encoding="utf-8"))
            return Path(claim["state_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _usable(self, block: str, state_dir: Path) -> bool:
        holder = self.holder(block)
        return (holder is None or holder == state_dir) and not self.named(block)

    def _check_usable(self, block: str, state_dir: Path) -> None:
        lab_nodes(block)  # a block at all
        holder = self.holder(block)
        if holder is not None and holder != state_dir:
            raise BadInput(
                f"the lab addresses from {block} are used by the lab in {holder}: give "
                f"another --first-address, or take that lab down"
            )
        named = self.named(block)
        if named:
            raise BadInput(
                f"{', '.join(named)} is named in {self.hosts_file}: a lab node there would cut "
                f"that name off when partitioned; give another --first-address (e.g. 127.0.1.11)"
            )


def _holder(claim_file: Path, first_address: str) -> Path | None:
    try:
        claim = json.loads(claim_file.read_text(encoding="utf-8"))
        state_dir = Path(claim["state_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if claim.get("boot_id") != boot_id():
        return None
    try:
        record = read_record(LabLayout(state_dir).record)
    except (OperationFailed, OSError):
        # damaged, or another user's that this one may not read: do not take its addresses
        return state_dir
    if record is None or record.first_address != first_address:
        return None
    return state_dir
