"""Opening an authenticated SSH connection to a device, the way OpenSSH would.

``host`` may be an alias from ``~/.ssh/config`` (HostName, User, Port, IdentityFile and
ProxyJump are honoured; jump hosts are reached through ``direct-tcpip`` channels of the
previous hop).  Host keys are checked against one known_hosts file -- the device's, else
``~/.ssh/known_hosts`` -- and an unknown key is accepted (and appended there) only with
``trust_on_first_use``.  Every failure becomes a :class:`Fault` with a reason a record can
carry: ``unreachable``, ``auth-failed`` or ``host-key``.

The socket is ours, not paramiko's, so it can carry TCP keepalive and ``TCP_USER_TIMEOUT``:
a board that vanishes mid-transfer or mid-run is noticed within :data:`LINK_TIMEOUT_S`.
Logging in takes at most :data:`CONNECT_DEADLINE_S`, or the device's ``timeout_s`` if that is
shorter.  paramiko's own log (tracebacks of failed handshakes) stays off the terminal: the
fault already says what happened.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, List, Optional, Tuple

import paramiko

from edgebench.agent.faults import Fault

from ..config import Device
from .base import printable

SSH_CONFIG = "~/.ssh/config"
KNOWN_HOSTS = "~/.ssh/known_hosts"
CONNECT_TRIES = 3
CONNECT_DEADLINE_S = 20.0  # all tries of one connection, handshake and auth included
BACKOFF_S = 0.5  # first pause between tries; doubles
KEEPALIVE_S = 5
LINK_TIMEOUT_S = 15  # unacknowledged data for this long: the link is gone
MAX_HOPS = 8
# GCM needs no separate MAC pass: the fastest cipher paramiko has, where the server offers it.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)  # Linux only

log = logging.getLogger("edgebench.ssh")
_paramiko_log = logging.getLogger("paramiko")
_paramiko_log.addHandler(logging.NullHandler())  # not logging's last resort: stderr
_paramiko_log.propagate = False


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to log in to, after ``~/.ssh/config`` has been applied."""

    name: str  # as written in devices.yaml or ProxyJump, for messages
    hostname: str
    port: int
    user: str
    key_files: Tuple[str, ...]  # empty: the ssh-agent and the default ~/.ssh/id_* keys
    via: Optional[Endpoint] = None  # the jump host in front of this one

    def __str__(self) -> str:
        return "%s@%s:%d" % (self.user, self.hostname, self.port)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


class _Transient(Exception):
    """A connection attempt failed in a way that may pass (refused while booting, reset)."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.message)
        self.fault = fault


class Connection:
    """A logged-in client plus the jump-host clients it tunnels through."""

    def __init__(self, client: paramiko.SSHClient, hops: List[paramiko.SSHClient]) -> None:
        self.client = client
        self.hops = hops

    @property
    def transport(self) -> paramiko.Transport:
        return self.client.get_transport()

    def close(self) -> None:
        for client in [self.client] + self.hops[::-1]:
            client.close()


def resolve(device: Device, ssh_config: Optional[str] = None) -> Endpoint:
    """The device's endpoint: its own settings win, ``~/.ssh/config`` fills the gaps."""
    assert device.host, "ssh devices have a host"
    config = _load_config(ssh_config)
    port = device.port if device.port != 22 else None  # 22 is also the unset default
    return _endpoint(
        config, device.host, device.user, port, (device.key,) if device.key else (), depth=0
    )


def _load_config(path: Optional[str]) -> paramiko.SSHConfig:
    path = os.path.expanduser(path or SSH_CONFIG)
    return paramiko.SSHConfig.from_path(path) if os.path.isfile(path) else paramiko.SSHConfig()


def _endpoint(
    config: paramiko.SSHConfig,
    name: str,
    user: Optional[str],
    port: Optional[int],
    keys: Tuple[str, ...],
    depth: int,
) -> Endpoint:
    if depth > MAX_HOPS:
        raise Fault("unreachable", "ProxyJump for %s nests more than %d hops" % (name, MAX_HOPS))
    entry = config.lookup(name)
    files = tuple(os.path.expanduser(f) for f in entry.get("identityfile", []))
    via = None
    jump = entry.get("proxyjump", "none")
    if jump.lower() != "none":
        for hop in jump.split(","):  # a, b: a first, then b through a
            hop_user, hop_host, hop_port = _parse_hop(hop.strip())
            hop_end = _endpoint(config, hop_host, hop_user, hop_port, (), depth + 1)
            via = hop_end if via is None else replace(hop_end, via=via)
    return Endpoint(
        name=name,
        hostname=entry["hostname"],
        port=port or int(entry.get("port", 22)),
        user=user or entry.get("user") or getpass.getuser(),
        key_files=keys or tuple(f for f in files if os.path.isfile(f)),
        via=via,
    )


def _parse_hop(spec: str) -> Tuple[Optional[str], str, Optional[int]]:
    """``[user@]host[:port]`` (also ``ssh://`` URIs) from a ProxyJump list."""
    spec = spec[len("ssh://") :] if spec.startswith("ssh://") else spec
    user, _, hostport = spec.rpartition("@")
    if hostport.startswith("["):  # [v6::addr]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:]
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    else:
        host, port = hostport, ""
    return user or None, host, int(port) if port.isdigit() else None


def open_connection(device: Device, ssh_config: Optional[str] = None) -> Connection:
    """A logged-in connection to ``device``; transient failures are retried with backoff."""
    endpoint = resolve(device, ssh_config)
    deadline = _Deadline(min(CONNECT_DEADLINE_S, device.timeout_s))
    pause = BACKOFF_S
    for attempt in range(1, CONNECT_TRIES + 1):
        try:
            return _connect(endpoint, device, deadline)
        except _Transient as exc:
            if attempt == CONNECT_TRIES or deadline.remaining() <= pause:
                raise exc.fault from None
            time.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable code")


def _connect(endpoint: Endpoint, device: Device, deadline: _Deadline) -> Connection:
    hops: List[paramiko.SSHClient] = []
    try:
        sock: Any = None
        if endpoint.via is not None:
            jump = _connect(endpoint.via, device, deadline)
            hops = jump.hops + [jump.client]
            sock = _tunnel(jump.transport, endpoint, deadline)
        client = _login(endpoint, device, sock or _tcp(endpoint, deadline), deadline)
    except BaseException:
        for hop in hops:
            hop.close()
        raise
    return Connection(client, hops)


def _tcp(endpoint: Endpoint, deadline: _Deadline) -> socket.socket:
    try:
        sock = socket.create_connection(
            (endpoint.hostname, endpoint.port), timeout=max(0.1, deadline.remaining())
        )
    except (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError) as exc:
        raise _Transient(
            Fault(
                "unreachable",
                "cannot connect to %s:%d: %s" % (endpoint.hostname, endpoint.port, exc.strerror),
            )
        ) from None
    except socket.timeout:
        raise Fault(
            "unreachable",
            "%s:%d did not answer within the connect deadline" % (endpoint.hostname, endpoint.port),
        ) from None
    except OSError as exc:  # no route, unknown name, network down
        raise Fault(
            "unreachable",
            "cannot connect to %s:%d: %s" % (endpoint.hostname, endpoint.port, exc.strerror or exc),
        ) from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_S),
        ("TCP_KEEPCNT", 3),
    ):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    if sys.platform.startswith("linux"):
        sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, LINK_TIMEOUT_S * 1000)
    return sock


def _tunnel(jump: paramiko.Transport, endpoint: Endpoint, deadline: _Deadline) -> paramiko.Channel:
    try:
        return jump.open_channel(
            "direct-tcpip",
            (endpoint.hostname, endpoint.port),
            ("127.0.0.1", 0),
            timeout=max(0.1, deadline.remaining()),
        )
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise Fault(
            "unreachable",
            "the jump host cannot reach %s:%d: %s" % (endpoint.hostname, endpoint.port, exc),
        ) from None


def _fast_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    offered = tuple(options.ciphers)
    options.ciphers = tuple(c for c in PREFERRED_CIPHERS if c in offered) + tuple(
        c for c in offered if c not in PREFERRED_CIPHERS
    )
    return transport


def _known_hosts(device: Device) -> str:
    return os.path.expanduser(device.known_hosts or KNOWN_HOSTS)


def _login(
    endpoint: Endpoint, device: Device, sock: Any, deadline: _Deadline
) -> paramiko.SSHClient:
    for key in endpoint.key_files:
        if not os.path.isfile(key):
            sock.close()
            raise Fault("auth-failed", "key file %s not found" % key)
    known_hosts = _known_hosts(device)
    client = paramiko.SSHClient()
    if os.path.isfile(known_hosts):
        client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(_UnknownHostKey(known_hosts, device.trust_on_first_use))
    where = (
        "%s (%s)" % (endpoint.name, endpoint)
        if endpoint.name != endpoint.hostname
        else str(endpoint)
    )
    remaining = max(1.0, deadline.remaining())
    try:
        client.connect(
            endpoint.hostname,
            endpoint.port,
            endpoint.user,
            sock=sock,
            key_filename=list(endpoint.key_files) or None,
            look_for_keys=not endpoint.key_files,
            allow_agent=True,
            timeout=remaining,
            banner_timeout=remaining,
            auth_timeout=remaining,
            transport_factory=_fast_transport,
        )
    except BaseException as exc:
        client.close()
        if isinstance(exc, Exception):
            raise _login_fault(exc, where, known_hosts) from None
        raise
    client.get_transport().set_keepalive(KEEPALIVE_S)
    return client


def _login_fault(exc: Exception, where: str, known_hosts: str) -> Exception:
    """The Fault (or :class:`_Transient`) for a failed handshake or login.  paramiko's
    messages can quote what the server sent: they are made printable."""
    if isinstance(exc, Fault):
        return exc
    text = printable(str(exc) or type(exc).__name__)
    if isinstance(exc, paramiko.BadHostKeyException):
        return Fault(
            "host-key",
            "the host key of %s CHANGED: it offers %s %s, %s has %s; if "
            "the board was reinstalled, remove the old entry (ssh-keygen -R)"
            % (
                where,
                exc.key.get_name(),
                exc.key.fingerprint,
                known_hosts,
                exc.expected_key.fingerprint,
            ),
        )
    if isinstance(exc, paramiko.AuthenticationException) or (
        isinstance(exc, paramiko.SSHException) and "authentication" in str(exc).lower()
    ):
        return Fault("auth-failed", "%s refused our key(s): %s" % (where, text))
    if isinstance(exc, (EOFError, ConnectionResetError, ConnectionAbortedError)) or (
        isinstance(exc, paramiko.SSHException) and "banner" in str(exc).lower()
    ):
        return _Transient(
            Fault(
                "unreachable",
                "%s dropped the connection during the SSH handshake (%s)" % (where, text),
            )
        )
    if isinstance(exc, (paramiko.SSHException, OSError)):
        return Fault("unreachable", "SSH handshake with %s failed: %s" % (where, text))
    return exc


class _UnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Refuse a host that is not in known_hosts -- or, with trust-on-first-use, record it."""

    def __init__(self, known_hosts: str, trust_on_first_use: bool) -> None:
        self.known_hosts = known_hosts
        self.trust = trust_on_first_use

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if not self.trust:
            raise Fault(
                "host-key",
                "%s is not in %s (it offers %s %s); add it with "
                "ssh-keyscan after checking the fingerprint, or set "
                "trust_on_first_use: true"
                % (hostname, self.known_hosts, key.get_name(), key.fingerprint),
            )
        os.makedirs(os.path.dirname(self.known_hosts) or ".", mode=0o700, exist_ok=True)
        with open(self.known_hosts, "a", encoding="utf-8") as fh:
            fh.write(paramiko.hostkeys.HostKeyEntry([hostname], key).to_line())
        log.warning(
            "trusting %s on first use (%s %s); recorded in %s",
            hostname,
            key.get_name(),
            key.fingerprint,
            self.known_hosts,
        )
