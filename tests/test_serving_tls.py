"""Serving beyond loopback (issue 16): TLS, or an explicit --insecure-bind; the job's own workers stay on loopback."""

import datetime
import ipaddress
import subprocess
import sys
import time

import grpc
import numpy as np
import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from serving.client import PredictClient
from serving.server.config import BatchingOptions, ModelEntry
from serving.server.engine import build_local_server, is_loopback, load_tls
from support.beam import one_line

pytestmark = pytest.mark.slow  # servers in subprocesses and an end-to-end run


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


def test_tls_server_answers_a_client_that_trusts_it_and_only_that_one(models_dir, certificate):
    cert, key = certificate
    entries = [ModelEntry(name="lenet5", base_path=str(models_dir / "lenet5"), policy="latest")]
    server = build_local_server(entries, batching=BatchingOptions(), port=0,
                                tls=load_tls(str(cert), str(key))).start()
    try:
        target = f"localhost:{server.port}"
        trusted = PredictClient(target, "lenet5", ca_file=str(cert), timeout_s=30)
        trusted.wait_until_available(60)
        assert trusted.predict(np.zeros((3, 28, 28), np.uint8)).outputs["probabilities"].shape == (3, 10)
        with pytest.raises(grpc.RpcError) as plaintext:
            PredictClient(target, "lenet5", timeout_s=5).predict(np.zeros((1, 28, 28), np.uint8))
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(1)


def test_binding_beyond_loopback_needs_tls_or_saying_so(models_dir, certificate):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    rc, lines = one_line(["serve", "--models-dir", str(models_dir), "--host", "0.0.0.0", "--port", "0"])
    assert rc == 2 and len(lines) == 1 and "--tls-cert" in lines[0] and "--insecure-bind" in lines[0]
    cert, _ = certificate
    rc, lines = one_line(["serve", "--models-dir", str(models_dir), "--host", "0.0.0.0", "--tls-cert", str(cert)])
    assert rc == 2 and "both --tls-cert and --tls-key" in lines[0]


def test_insecure_bind_serves_with_a_warning(models_dir):
    proc = subprocess.Popen([sys.executable, "-m", "formdigits", "serve", "--models-dir", str(models_dir),
                             "--host", "0.0.0.0", "--port", "0", "--insecure-bind"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert "warning: plaintext gRPC on 0.0.0.0" in err


def test_a_local_run_listens_on_loopback_only(scans, server, tmp_path):
    job = subprocess.Popen([sys.executable, "-m", "formdigits", "run", "--input", str(scans / "scan_*"), "--templates",
                            str(scans / "templates"), "--output", str(tmp_path / "out"), "--serving", server.target],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listening = set()
    while job.poll() is None:
        try:
            for proc in [psutil.Process(job.pid)] + psutil.Process(job.pid).children(recursive=True):
                listening |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == "LISTEN"}
        except psutil.Error:
            pass
        time.sleep(0.1)
    assert job.returncode == 0
    assert listening and all(ipaddress.ip_address(ip).is_loopback or ip == "::ffff:127.0.0.1" for ip in listening)
