"""``node.keyring``: the encryption keys of a running node (memberlist's ``Keyring``).

Keys are 16, 24 or 32 bytes (AES-128/192/256). The primary key encrypts; every installed
key is tried to decrypt, which is what lets a cluster rotate keys without downtime:
install the new key everywhere, ``use`` it everywhere, then ``remove`` the old one.
Cluster-wide rotation (Serf's key queries) belongs to the Serf layer; these act on this
node only. Turning encryption on in a live cluster is the rolling procedure in
``docs/embedding.md`` (install a key with ``gossip_verify_incoming`` and
``gossip_verify_outgoing`` off, then switch them on node by node).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swimpy.core.inputs import (
    GossipVerifyRequested,
    InstallKeyRequested,
    RemoveKeyRequested,
    UseKeyRequested,
)

if TYPE_CHECKING:
    from swimpy.runtime.driver import Driver


class Keyring:
    """Methods run on the node's trio thread (the thread host forwards them there)."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    def list(self) -> list[bytes]:
        """Installed keys, the primary first (empty: encryption is off)."""
        return list(self._driver.engine.keys())

    @property
    def primary(self) -> bytes | None:
        keys = self._driver.engine.keys()
        return keys[0] if keys else None

    def install(self, key: bytes) -> None:
        """Add a key (it becomes primary if it is the first). ``ValueError`` for a key
        that is not 16, 24 or 32 bytes."""
        self._driver.submit_nowait(InstallKeyRequested(bytes(key)))

    def use(self, key: bytes) -> None:
        """Make an installed key the primary (encrypting) key."""
        self._driver.submit_nowait(UseKeyRequested(bytes(key)))

    def remove(self, key: bytes) -> None:
        """Remove a key; removing the primary key is an error (``ValueError``)."""
        self._driver.submit_nowait(RemoveKeyRequested(bytes(key)))

    def set_verify(self, *, incoming: bool, outgoing: bool) -> None:
        """Switch ``gossip_verify_incoming`` / ``gossip_verify_outgoing`` on the running
        node (see the rolling procedure in the module's docstring)."""
        self._driver.submit_nowait(GossipVerifyRequested(incoming, outgoing))

    @property
    def verify(self) -> tuple[bool, bool]:
        """The current (verify_incoming, verify_outgoing)."""
        return self._driver.engine.verify
