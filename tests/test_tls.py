"""TLS contexts: real handshakes in memory, verification, and errors for bad files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from ackchat.tls import TlsSetupError, client_context, server_context


@dataclass(frozen=True)
class Files:
    """PEM files for a server certificate for ``localhost`` and the CA that issued it."""

    cert: str
    key: str
    ca: str


def write_files(directory: Path, ca: trustme.CA) -> Files:
    leaf = ca.issue_cert("localhost")
    directory.mkdir()
    files = Files(
        str(directory / "cert.pem"), str(directory / "key.pem"), str(directory / "ca.pem")
    )
    Path(files.cert).write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(files.key)
    ca.cert_pem.write_to_path(files.ca)
    return files


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Files, Files]:
    """Two unrelated CAs, each with a server certificate for ``localhost``."""
    base = tmp_path_factory.mktemp("pki")
    return write_files(base / "one", trustme.CA()), write_files(base / "two", trustme.CA())


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str = "localhost"
) -> bytes:
    """Shake hands through memory buffers, send a line from client to server, return it."""
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    client_side = client.wrap_bio(client_in, client_out, server_hostname=server_hostname)
    pending = [client_side, server_side]
    for _ in range(10):
        for side in list(pending):
            try:
                side.do_handshake()
                pending.remove(side)
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if not pending:
            break
    assert not pending, "the handshake did not finish"
    client_side.write(b"hello\n")
    server_in.write(client_out.read())
    return server_side.read()


# Handshakes


def test_a_client_trusting_the_ca_completes_a_handshake(pki: tuple[Files, Files]) -> None:
    files, _ = pki
    server = server_context(files.cert, files.key)
    assert handshake(server, client_context(files.ca, insecure=False)) == b"hello\n"


def test_a_client_refuses_a_certificate_from_another_ca(pki: tuple[Files, Files]) -> None:
    files, other = pki
    server = server_context(files.cert, files.key)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(server, client_context(other.ca, insecure=False))


def test_the_system_cas_do_not_trust_a_private_ca(pki: tuple[Files, Files]) -> None:
    files, _ = pki
    server = server_context(files.cert, files.key)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, client_context(None, insecure=False))


def test_a_client_refuses_a_certificate_for_another_name(pki: tuple[Files, Files]) -> None:
    files, _ = pki
    server = server_context(files.cert, files.key)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(server, client_context(files.ca, insecure=False), "chat.example.org")


def test_an_insecure_client_accepts_any_certificate(pki: tuple[Files, Files]) -> None:
    files, other = pki
    server = server_context(files.cert, files.key)
    client = client_context(other.ca, insecure=True)
    assert handshake(server, client, "chat.example.org") == b"hello\n"
    assert handshake(server, client_context(None, insecure=True)) == b"hello\n"


def test_tls_1_2_is_the_oldest_version_either_side_offers(pki: tuple[Files, Files]) -> None:
    files, _ = pki
    server = server_context(files.cert, files.key)
    client = client_context(files.ca, insecure=False)
    assert server.minimum_version is client.minimum_version is ssl.TLSVersion.TLSv1_2
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(server, client) == b"hello\n"


def test_a_secure_client_verifies_the_chain_and_the_host_name() -> None:
    client = client_context(None, insecure=False)
    assert (client.verify_mode, client.check_hostname) == (ssl.CERT_REQUIRED, True)


# Bad files


def load_error(cert: str, key: str) -> str:
    with pytest.raises(TlsSetupError) as raised:
        server_context(cert, key)
    return str(raised.value)


def test_a_missing_file_is_named(pki: tuple[Files, Files], tmp_path: Path) -> None:
    files, _ = pki
    missing = str(tmp_path / "missing.pem")
    assert load_error(missing, files.key) == (
        f"cannot load the TLS certificate chain from {missing} and {files.key}: "
        f"{missing} cannot be read (No such file or directory)"
    )
    assert load_error(files.cert, missing) == (
        f"cannot load the TLS certificate chain from {files.cert} and {missing}: "
        f"{missing} cannot be read (No such file or directory)"
    )


def test_a_file_that_is_not_pem_is_named(pki: tuple[Files, Files], tmp_path: Path) -> None:
    files, _ = pki
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate\n")
    assert load_error(str(garbage), files.key).endswith(f": {garbage} holds no PEM certificate")
    assert load_error(files.cert, str(garbage)).endswith(f": {garbage} holds no PEM private key")
    assert load_error(files.cert, files.cert).endswith(f": {files.cert} holds no PEM private key")


def test_a_key_that_does_not_match_the_certificate(pki: tuple[Files, Files]) -> None:
    files, other = pki
    assert load_error(files.cert, other.key) == (
        f"cannot load the TLS certificate chain from {files.cert} and {other.key}: "
        "the private key does not match the certificate"
    )


def test_an_encrypted_key_is_refused_without_a_prompt(
    pki: tuple[Files, Files], tmp_path: Path
) -> None:
    files, _ = pki
    key = serialization.load_pem_private_key(Path(files.key).read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert load_error(files.cert, str(encrypted)).endswith(
        ": the private key is encrypted, which is not supported"
    )


def test_a_bad_ca_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(TlsSetupError) as raised:
        client_context(missing, insecure=False)
    assert str(raised.value) == (
        f"cannot load CA certificates from {missing}: "
        f"{missing} cannot be read (No such file or directory)"
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate\n")
    with pytest.raises(TlsSetupError, match="holds no PEM certificate"):
        client_context(str(garbage), insecure=True)
