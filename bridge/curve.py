"""ZeroMQ CURVE authentication and encryption for bridge servers and clients (optional).

Keys are files in ZeroMQ's certificate format (as ``zmq.auth`` and ``exfel-bridge keygen``
write them): ``NAME.key`` holds a public key, ``NAME.key_secret`` the public and the secret
key. A server needs its secret key file, and accepts either any client (traffic is still
encrypted, and clients must know the server's public key) or only the clients whose public key
files are in an allow directory. A client needs the server's public key and, for a server with
an allow directory, its own secret key file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import zmq
import zmq.auth

__all__ = ['CurveKeyError', 'client_keys', 'generate_keys', 'server_keys', 'start_authenticator']

KeySource = str | os.PathLike | bytes


class CurveKeyError(ValueError):
    """A CURVE key file or key cannot be used (the message names it and says what to do)."""

    __module__ = 'bridge.curve'


def _check_curve_available() -> None:
    if not zmq.has('curve'):
        raise CurveKeyError('This ZeroMQ library was built without CURVE support '
                            f'(libzmq {zmq.zmq_version()}); install pyzmq from PyPI')


def _z85_key(value: bytes, what: str) -> bytes:
    if len(value) != 40:
        raise CurveKeyError(f'{what} must be a Z85-encoded key of 40 characters, not '
                            f'{len(value)} bytes; or pass the path of a key file')
    return value


def _load(path: str | os.PathLike, what: str) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise CurveKeyError(f'{what} {str(path)!r} is not a file; '
                            'create key files with `exfel-bridge keygen DIR NAME`')
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise CurveKeyError(f'{what} {str(path)!r} is not a ZeroMQ key file ({e}); create '
                            'key files with `exfel-bridge keygen DIR NAME`') from None


def _keypair(secret_key: KeySource, what: str) -> tuple[bytes, bytes]:
    """(public, secret) from a secret key file, or from a Z85 secret key."""
    if isinstance(secret_key, bytes):
        secret = _z85_key(secret_key, what)
        return zmq.curve_public(secret), secret
    public, secret = _load(secret_key, what)
    if secret is None:
        raise CurveKeyError(f'{what} {str(secret_key)!r} holds only a public key; pass the '
                            'secret key file (NAME.key_secret)')
    return public, secret


def server_keys(secret_key: KeySource) -> tuple[bytes, bytes]:
    """The server's (public, secret) key pair from its secret key file or Z85 secret key."""
    _check_curve_available()
    return _keypair(secret_key, 'Server secret key')


def client_keys(server_key: KeySource,
                secret_key: KeySource | None = None) -> tuple[bytes, bytes, bytes]:
    """(server public, client public, client secret) for a client socket.

    Without ``secret_key`` the client uses a fresh key pair (enough for servers that accept
    any client).
    """
    _check_curve_available()
    if isinstance(server_key, bytes):
        server_public = _z85_key(server_key, 'Server public key')
    else:
        server_public, _ = _load(server_key, 'Server public key file')
    if secret_key is None:
        public, secret = zmq.curve_keypair()
    else:
        public, secret = _keypair(secret_key, 'Client secret key')
    return server_public, public, secret


def start_authenticator(context: zmq.Context, allow: str | os.PathLike | None):
    """Start ZeroMQ's authenticator (ZAP) in ``context`` for CURVE servers.

    ``allow``: a directory whose ``*.key`` files are the client public keys accepted (read
    now), or None for any client. Returns the running
    :class:`zmq.auth.thread.ThreadAuthenticator`; stop it before terminating ``context``.
    """
    from zmq.auth.thread import ThreadAuthenticator

    if allow is not None:
        allow = Path(allow)
        if not allow.is_dir():
            raise CurveKeyError(f'Allowed client keys {str(allow)!r} is not a directory; '
                                'give a directory of client public key files (NAME.key)')
        if not any(allow.glob('*.key')):
            raise CurveKeyError(f'Allowed client keys {str(allow)!r} holds no public key '
                                'file (*.key): no client could connect')
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(
        domain='*', location=zmq.auth.CURVE_ALLOW_ANY if allow is None else str(allow))
    return authenticator


def generate_keys(directory: str | os.PathLike, name: str,
                  overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new key pair: ``DIRECTORY/NAME.key`` (public) and ``NAME.key_secret``.

    The secret key file is readable by its owner only. Both files appear complete or not at
    all; existing files are kept unless ``overwrite``.

    Returns
    -------
    public, secret : Path
    """
    _check_curve_available()
    if not name or Path(name).name != name or name.startswith('.'):
        raise CurveKeyError(f'Key name {name!r} must be a plain file name, e.g. "server"')
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f'{name}.key', directory / f'{name}.key_secret'
    if not overwrite:
        for path in (public, secret):
            if path.exists():
                raise CurveKeyError(f'{str(path)!r} exists; choose another name, or '
                                    'overwrite it (--force) if it is no longer used')
    with tempfile.TemporaryDirectory(dir=directory, prefix=f'.{name}.partial-') as tmp:
        os.chmod(tmp, 0o700)
        new_public, new_secret = zmq.auth.create_certificates(tmp, name)
        os.chmod(new_secret, 0o600)
        os.chmod(new_public, 0o644)
        os.replace(new_secret, secret)
        os.replace(new_public, public)
    return public, secret
