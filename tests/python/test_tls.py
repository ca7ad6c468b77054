"""The YDB SDK's generated stubs over TLS, as ydbops connects with grpcs://: a secure channel that
trusts the test's own CA (grpc.ssl_channel_credentials(root_certificates=...)), and mutual TLS with
a client certificate. Certificates come from the openssl command line, as in the README.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from arbiter_testlib import SUCCESS, Client, lock, groups

SERVER_EXT = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
CLIENT_EXT = "extendedKeyUsage=clientAuth\n"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="needs the openssl command line")


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(d: Path, name: str) -> None:
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30", "-subj", f"/CN={name}")


def issue(d: Path, ca: str, name: str, cn: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "30", "-out", f"{name}.pem", "-extfile", f"{name}.ext")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "wrong-ca")
    issue(d, "ca", "server", "arbiter", SERVER_EXT)
    issue(d, "ca", "client", "ydbops", CLIENT_EXT)
    return d


def tls_args(pki: Path, mtls: bool = False) -> list[str]:
    args = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    if mtls:
        args += ["--tls-client-ca", str(pki / "ca.pem")]
    return args


def secure(address: str, pki: Path, ca: str = "ca.pem", client: bool = False) -> grpc.Channel:
    """What ydbops does for grpcs://host:port with a CA file (and a client certificate)."""
    kwargs = {"root_certificates": (pki / ca).read_bytes()}
    if client:
        kwargs["private_key"] = (pki / "client.key").read_bytes()
        kwargs["certificate_chain"] = (pki / "client.pem").read_bytes()
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(**kwargs))


def unavailable(channel: grpc.Channel) -> None:
    """The call fails in the handshake: UNAVAILABLE, nothing reaches the server's services."""
    with pytest.raises(grpc.RpcError) as e:
        Client(channel).list_nodes()
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
    channel.close()


def test_ydb_stubs_over_tls(server_factory, pki):
    srv = server_factory(extra_args=tls_args(pki))
    ch = secure(srv.address, pki)
    client = Client(ch)
    nodes = client.list_nodes().expect(SUCCESS).result.nodes
    assert len(nodes) == 12
    # A whole task round trip over the secure channel.
    task = client.create("tls-1", groups(lock(node=nodes[0].node_id))).expect(SUCCESS)
    assert task.result.task_uid == "tls-1"
    client.drop("tls-1").expect(SUCCESS)
    # "localhost" is in the certificate too.
    Client(secure(f"localhost:{srv.port}", pki)).list_nodes().expect(SUCCESS)
    ch.close()
    # A client that trusts another CA, or plaintext, gets nowhere.
    unavailable(secure(srv.address, pki, ca="wrong-ca.pem"))
    unavailable(grpc.insecure_channel(srv.address))
    assert "TLS handshake failed" in srv.logs()


def test_ydb_stubs_over_mutual_tls(server_factory, pki):
    srv = server_factory(extra_args=tls_args(pki, mtls=True))
    ch = secure(srv.address, pki, client=True)
    assert len(Client(ch).list_nodes().expect(SUCCESS).result.nodes) == 12
    ch.close()
    unavailable(secure(srv.address, pki))
