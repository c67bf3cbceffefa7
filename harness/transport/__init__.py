"""How the harness reaches a device: ``base`` (the agent's exit, the local transport),
``ssh`` and ``sshconn`` (paramiko), chosen by :func:`make_transport`."""

from __future__ import annotations

from ..config import Device
from .base import LocalTransport, Transport


def make_transport(device: Device) -> Transport:
    if device.kind == "local":
        return LocalTransport(device)
    from .ssh import SSHTransport  # paramiko is imported only for SSH devices

    return SSHTransport(device)
