"""A Python prompt inside the running daemon, for live operations.

Telnet on ``manhole.host:manhole.port``: with ``manhole.passwd_file`` it asks
for a user and password (passwd(5) format, ``user:password`` lines);
without one it is open, which the configuration only allows on a loopback
address.  SSH on ``manhole.ssh_port`` takes public keys only, from
``manhole.authorized_keys``.  The prompt's namespace holds the live objects
and the helpers of ``cosmic.ops.console``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.conch import manhole, manhole_ssh, telnet
from twisted.conch.checkers import InMemorySSHKeyDB, SSHPublicKeyChecker, readAuthorizedKeyFile
from twisted.conch.insults import insults
from twisted.conch.ssh import keys
from twisted.cred import checkers, portal
from twisted.internet import defer, protocol, threads
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.logger import Logger
from twisted.python import filepath
from zope.interface import implementer

log = Logger(namespace="cosmic.manhole")

MANHOLE_USER = b"cosmic"  # the account name SSH keys are accepted for


class ManholeRefused(Exception):
    exit_code = 78  # a configuration problem: sysexits EX_CONFIG


@implementer(portal.IRealm)
class _TelnetRealm:
    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        if telnet.ITelnetProtocol in interfaces:
            proto = telnet.TelnetBootstrapProtocol(
                insults.ServerProtocol, manhole.ColoredManhole, self.namespace
            )
            return telnet.ITelnetProtocol, proto, lambda: None
        raise NotImplementedError(interfaces)


def _open_telnet(namespace: dict[str, Any]) -> protocol.ServerFactory:
    factory = protocol.ServerFactory()
    factory.protocol = lambda: telnet.TelnetTransport(
        telnet.TelnetBootstrapProtocol, insults.ServerProtocol, manhole.ColoredManhole, namespace
    )
    return factory


def _password_telnet(namespace: dict[str, Any], passwd_file: str) -> protocol.ServerFactory:
    checker = checkers.FilePasswordDB(passwd_file, cache=False)
    telnet_portal = portal.Portal(_TelnetRealm(namespace), [checker])
    factory = protocol.ServerFactory()
    factory.protocol = lambda: telnet.TelnetTransport(
        telnet.AuthenticatingTelnetProtocol, telnet_portal
    )
    return factory


def _ssh(namespace: dict[str, Any], authorized_keys: str, host_key: str) -> Any:
    with open(authorized_keys, "rb") as handle:
        public_keys = list(readAuthorizedKeyFile(handle))
    if not public_keys:
        raise ManholeRefused(f"{authorized_keys} holds no usable public key")
    realm = manhole_ssh.TerminalRealm()
    realm.chainedProtocolFactory = lambda: insults.ServerProtocol(manhole.ColoredManhole, namespace)
    checker = SSHPublicKeyChecker(InMemorySSHKeyDB({MANHOLE_USER: public_keys}))
    factory = manhole_ssh.ConchFactory(portal.Portal(realm, [checker]))
    location = filepath.FilePath(host_key)
    location.parent().makedirs(ignoreExistingDirectory=True)
    key = keys._getPersistentRSAKey(location, 3072)
    # Per instance: ConchFactory's key dicts are class attributes.
    factory.publicKeys = {b"ssh-rsa": key}
    factory.privateKeys = {b"ssh-rsa": key}
    return factory


class ManholeService(service.Service):
    name = "manhole"

    def __init__(self, settings: Any, namespace: dict[str, Any], reactor: Any) -> None:
        self._settings = settings.manhole
        self.namespace = namespace
        self._reactor = reactor
        self.ports: list[Any] = []

    def _endpoint(self, port: int) -> Any:
        host = quoteStringArgument(self._settings.host)
        return serverFromString(self._reactor, f"tcp:port={port}:interface={host}")

    def startService(self) -> defer.Deferred[None]:
        super().startService()
        return defer.ensureDeferred(self._listen())

    async def _listen(self) -> None:
        s = self._settings
        loopback = ipaddress.ip_address(s.host).is_loopback
        if s.port:
            if s.passwd_file:
                if not Path(s.passwd_file).is_file():
                    raise ManholeRefused(f"manhole.passwd_file {s.passwd_file} does not exist")
                factory = _password_telnet(self.namespace, s.passwd_file)
            elif loopback:
                factory = _open_telnet(self.namespace)
            else:
                raise ManholeRefused("a manhole on a non-loopback address needs a passwd file")
            self.ports.append(await self._endpoint(s.port).listen(factory))
            log.info(
                "telnet manhole on {host}:{port} ({auth})",
                host=s.host,
                port=self.ports[-1].getHost().port,
                auth="password" if s.passwd_file else "open, loopback only",
            )
        if s.ssh_port:
            if not s.authorized_keys or not Path(s.authorized_keys).is_file():
                raise ManholeRefused("the SSH manhole needs manhole.authorized_keys")
            # Off the reactor: the first start generates an RSA host key (~1 s).
            factory = await threads.deferToThread(
                _ssh, self.namespace, s.authorized_keys, s.ssh_host_key
            )
            self.ports.append(await self._endpoint(s.ssh_port).listen(factory))
            log.info(
                "SSH manhole on {host}:{port} (user {user}, public keys only)",
                host=s.host,
                port=self.ports[-1].getHost().port,
                user=MANHOLE_USER.decode(),
            )

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()
        ports, self.ports = self.ports, []
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
