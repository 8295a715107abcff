"""TLS contexts for the server and the client, with errors a person can act on.

The server loads a certificate chain and its private key (PEM); the client verifies
the server against the system's certificate authorities, or the ones in a given file,
unless told to be insecure. Both require TLS 1.2 or newer. Every problem with the
files is one :class:`TlsSetupError` whose message names the file and what is wrong.
An encrypted private key is refused rather than prompting on the terminal.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from ackchat.errors import AckchatError

CERTIFICATE_MARKER = b"-----BEGIN CERTIFICATE-----"
PRIVATE_KEY_MARKER = b"PRIVATE KEY-----"


class TlsSetupError(AckchatError):
    """TLS cannot be set up from the files given; the message is one plain sentence."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context presenting the chain in ``cert_file`` with the key in ``key_file``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    failure = f"cannot load the TLS certificate chain from {cert_file} and {key_file}"

    def refuse_passphrase() -> bytes:
        raise TlsSetupError(f"{failure}: the private key is encrypted, which is not supported")

    try:
        context.load_cert_chain(cert_file, key_file, password=refuse_passphrase)
    except OSError as error:
        problem = (
            _file_problem(cert_file, CERTIFICATE_MARKER, "certificate")
            or _file_problem(key_file, PRIVATE_KEY_MARKER, "private key")
            or _describe(error)
        )
        raise TlsSetupError(f"{failure}: {problem}") from error
    return context


def client_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """A client verifying the server by ``ca_file`` (else the system's CAs), unless insecure.

    An insecure client checks neither the chain nor the host name, so it is open to a
    man in the middle; a ``ca_file`` given anyway must still load.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # Verifies the chain and host name.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is None:
        context.load_default_certs()
    else:
        try:
            context.load_verify_locations(cafile=ca_file)
        except OSError as error:
            problem = _file_problem(ca_file, CERTIFICATE_MARKER, "certificate") or _describe(error)
            raise TlsSetupError(f"cannot load CA certificates from {ca_file}: {problem}") from error
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _file_problem(path: str, marker: bytes, what: str) -> str | None:
    """What is wrong with a PEM file that should hold a ``what``, if it is that simple."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return f"{path} cannot be read ({error.strerror or error})"
    if marker not in data:
        return f"{path} holds no PEM {what}"
    return None


def _describe(error: OSError) -> str:
    """OpenSSL's reason for a failure, in words."""
    if isinstance(error, ssl.SSLError):
        if error.reason == "KEY_VALUES_MISMATCH":
            return "the private key does not match the certificate"
        if error.reason:
            return error.reason.lower().replace("_", " ")
    return str(error.strerror or error)
