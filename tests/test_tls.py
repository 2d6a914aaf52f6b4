"""Temporal Cloud's ways in, for real: TLS, mTLS and an API key, through nginx before the dev server.

The test makes its own certificate authorities and certificates (the `cryptography` package), and
runs nginx on loopback with its own config and prefix: TLS with `ssl_verify_client on` (mTLS), an
`authorization: Bearer <key>` check answered with gRPC's UNAUTHENTICATED as Temporal Cloud does,
and `grpc_pass` to the dev server. Through it sessions exchange cues and the CLI works; each wrong
setting gives an error naming what to fix; the API key never shows in output, files or processes.
"""

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import tempo
from conftest import ROOT, play, start_grpc_front, tempo_env, wait_until
from test_recruit import recruiter_env, stand_in, tmux_dir  # noqa: F401 (fixtures)

API_KEY = f"tk-{uuid.uuid4().hex}"  # what nginx accepts; never printed, logged or written by tempo


# -- certificates, made here --------------------------------------------------------------------


def make_certificate(directory: Path, stem: str, *, issuer=None, server: bool = False, days=(-1, 30)):
    """Write `stem`.pem and `stem`.key: a CA (no issuer) or a leaf signed by `issuer`; return (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)])
    signer_cert, signer_key = issuer or (None, key)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(signer_cert.subject if signer_cert else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0])).not_valid_after(now + datetime.timedelta(days=days[1])))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / f"{stem}.key").chmod(0o600)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ca = make_certificate(d, "ca")
    other = make_certificate(d, "other-ca")
    make_certificate(d, "server", issuer=ca, server=True)
    make_certificate(d, "client", issuer=ca)
    make_certificate(d, "expired", issuer=ca, days=(-30, -2))
    make_certificate(d, "stranger", issuer=other)
    return d


@pytest.fixture(scope="module")
def front(temporal, pki, tmp_path_factory):
    """nginx: TLS with the test CA's server certificate, client certificates required, the API key checked."""
    tls = (f"ssl_certificate {pki}/server.pem; ssl_certificate_key {pki}/server.key;\n"
           f"ssl_client_certificate {pki}/ca.pem; ssl_verify_client on;")
    # A wrong key gets gRPC's UNAUTHENTICATED, as from Temporal Cloud; certificate errors stay nginx's HTTP 400.
    server = ('error_page 401 = @unauthenticated;\n'
              'location @unauthenticated { default_type application/grpc; add_header grpc-status 16 always; '
              'add_header grpc-message "Request unauthorized" always; return 204; }')
    location = f'if ($http_authorization != "Bearer {API_KEY}") {{ return 401; }}'
    proxy = start_grpc_front(tmp_path_factory.mktemp("nginx"), temporal.address, tls=tls, server=server, location=location)
    yield proxy
    proxy.stop()


def cloud_env(front, pki, **overrides: str) -> dict[str, str]:
    env = {
        "TEMPORAL_ADDRESS": front.address,
        "TEMPORAL_API_KEY": API_KEY,
        "TEMPORAL_TLS_CERT_PATH": f"{pki}/client.pem",
        "TEMPORAL_TLS_KEY_PATH": f"{pki}/client.key",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": f"{pki}/ca.pem",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


def command_lines_with(secret: str) -> list[str]:
    """Every process's command line (this user's) that contains `secret`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if secret in cmdline:
                found.append(cmdline)
    return found


def files_with(directory: Path, secret: str) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


# -- it works through the front -----------------------------------------------------------------


@pytest.mark.anyio
async def test_sessions_exchange_cues_through_tls_mtls_and_an_api_key(temporal, ensemble, front, pki):
    env = cloud_env(front, pki)
    async with play(temporal, ensemble, **env) as a, play(temporal, ensemble, **env) as b:
        await a.call("set_name", name="alice")
        await b.call("set_name", name="bob")
        await a.call("cue", to="bob", message="over TLS")
        cue = await b.next_cue()
        assert (cue["content"], cue["meta"]["from"]) == ("over TLS", "alice")
        await b.call("cue", to="alice", message="back over TLS")
        assert (await a.next_cue())["content"] == "back over TLS"
        assert command_lines_with(API_KEY) == []


def test_status_preflight_init_and_config_show_pass_without_showing_the_key(temporal, ensemble, front, pki, cli, tmp_path):
    env = cloud_env(front, pki)
    project = tmp_path / "project"
    project.mkdir()
    results = [cli("status", **env), cli("init", "-d", str(project), **env),
               cli("preflight", "-d", str(project), **env), cli("config", "show", **env)]
    status, init, preflight, show = results
    assert status.returncode == 0 and f"Temporal {front.address} (namespace default): reachable" in status.stdout, status.stdout
    assert init.returncode == 0
    assert f"✓ Temporal reachable at {front.address}" in preflight.stdout, preflight.stdout
    assert "****" in show.stdout and API_KEY[-4:] in show.stdout  # masked, as `config show` always does
    for result in results:
        assert API_KEY not in result.stdout + result.stderr
    assert files_with(project, API_KEY) == [] and files_with(cli.home, API_KEY) == []


def test_up_starts_a_conductor_over_tls_whose_window_never_holds_the_key(temporal, ensemble, front, pki, cli, stand_in,
                                                                          tmux_dir, tmp_path):  # noqa: F811
    """`tempo up` through the front: the conductor's tmux window gets the key from a private file it deletes."""
    import asyncio

    project, scratch = tmp_path / "project", tmp_path / "tmp"
    project.mkdir()
    scratch.mkdir()
    env = {**recruiter_env(stand_in, tmux_dir), **cloud_env(front, pki), "TMPDIR": str(scratch)}
    up = cli("up", ensemble, "-d", str(project), **env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "✓ conductor joined ensemble" in up.stdout  # ✓ only once it has joined, through the front

    async def conductor():
        client = await tempo.connect(tempo.Config(address=temporal.address))
        return await tempo.find_player(client, ensemble, "conductor")

    asyncio.run(wait_until(conductor, timeout=60))
    record = json.loads((stand_in / "unnamed.json").read_text())
    assert record["env"]["TEMPORAL_API_KEY"] == API_KEY  # it reached the session ...
    assert API_KEY not in up.stdout + up.stderr  # ... and nothing else
    assert files_with(scratch, API_KEY) == [] and files_with(project, API_KEY) == []
    runtime = f"tempo-{os.getuid()}"  # the sessions' hook sockets (see the delivery ladder), not a file
    assert [p for p in scratch.glob("tempo-*") if p.name != runtime] == []  # the script and the secrets file removed themselves
    tmux_environment = subprocess.run(["tmux", "show-environment", "-g"], capture_output=True, text=True,
                                      env={**os.environ, "TMUX_TMPDIR": tmux_dir}).stdout
    assert "PATH=" in tmux_environment and API_KEY not in tmux_environment  # the tmux server tempo started
    assert command_lines_with(API_KEY) == []


def test_a_window_script_reads_the_key_from_its_private_file(tmp_path):
    secrets = tempo._write_secrets({"TEMPORAL_API_KEY": API_KEY})
    assert os.stat(secrets).st_mode & 0o777 == 0o600
    out = tmp_path / "seen"
    script = tempo._launch_script(["sh", "-c", f'printf %s "$TEMPORAL_API_KEY" > {out}'], {"X": "1"}, str(tmp_path), secrets)
    assert API_KEY not in script
    path = tmp_path / "launch.sh"
    path.write_text(script)
    subprocess.run(["/bin/sh", str(path)], check=True, timeout=30)
    assert out.read_text() == API_KEY and not Path(secrets).exists() and not path.exists()


# -- each wrong setting names what to fix ---------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, says, fix",
    [
        ({"TEMPORAL_API_KEY": "tk-wrong-key-0000"}, "the server refused the API key tempo sent", "tempo config set api_key"),
        ({"TEMPORAL_API_KEY": ""}, "the server wants an API key and tempo sent none", "tempo config set api_key"),
        ({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "{pki}/other-ca.pem"},
         "the server's TLS certificate is not signed by a CA tempo trusts", "tempo config set tls_ca PATH"),
        ({"TEMPORAL_TLS_CERT_PATH": "{pki}/expired.pem", "TEMPORAL_TLS_KEY_PATH": "{pki}/expired.key"},
         "tempo's client certificate {pki}/expired.pem expired on", "tempo config set tls_cert PATH"),
        ({"TEMPORAL_TLS_CERT_PATH": "{pki}/stranger.pem", "TEMPORAL_TLS_KEY_PATH": "{pki}/stranger.key"},
         "the server refused tempo's client certificate {pki}/stranger.pem", "signed by a CA the server accepts"),
        ({"TEMPORAL_TLS_CERT_PATH": "", "TEMPORAL_TLS_KEY_PATH": ""},
         "the server wants a client certificate (mTLS) and tempo sent none", "tempo config set tls_cert PATH"),
        ({"TEMPORAL_TLS_SERVER_NAME": "temporal.example"},
         "the server's TLS certificate is not valid for the name tempo checked (temporal.example)",
         "tempo config set tls_server_name NAME"),
        ({"TEMPORAL_TLS": "false", "TEMPORAL_API_KEY": "", "TEMPORAL_TLS_CERT_PATH": "", "TEMPORAL_TLS_KEY_PATH": "",
          "TEMPORAL_TLS_SERVER_CA_CERT_PATH": ""}, "the server speaks TLS and tempo connected without it", "tempo config set tls true"),
    ],
    ids=["wrong-key", "no-key", "wrong-ca", "expired-client-cert", "client-cert-of-another-ca", "no-client-cert",
         "server-name-mismatch", "tls-off"],
)
def test_each_wrong_setting_names_what_to_fix(front, pki, cli, overrides, says, fix):
    env = cloud_env(front, pki, **{k: v.format(pki=pki) for k, v in overrides.items()})
    result = cli("status", **env)
    assert result.returncode == 1
    assert says.format(pki=pki) in result.stdout and fix in result.stdout, result.stdout
    assert "Temporal is unreachable" not in result.stdout and "start it with `tempo server" not in result.stdout
    for secret in (API_KEY, "tk-wrong-key-0000"):
        assert secret not in result.stdout + result.stderr


def test_a_session_with_a_wrong_key_logs_why_and_never_the_key(temporal, ensemble, front, pki):
    wrong = "tk-wrong-key-1111"
    env = tempo_env(temporal, ensemble, **cloud_env(front, pki, TEMPORAL_API_KEY=wrong), CLAUDE_TEMPO_LOG="INFO")
    serve = subprocess.Popen([sys.executable, str(ROOT / "tempo.py"), "serve"], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in serve.stderr:  # the session retries; its first warning says why
            lines.append(line)
            if "refused the API key" in line or len(lines) > 20:  # it retries with a warning each time
                break
    finally:
        serve.stdin.close()  # the MCP client went away: the session ends
        lines += serve.stderr.readlines()
        serve.wait(30)
    log = "".join(lines)
    assert "the server refused the API key tempo sent" in log and "tempo config set api_key" in log
    assert wrong not in log and API_KEY not in log


def test_a_windows_console_reads_the_key_from_its_private_file_too():
    import base64

    launch = tempo._build_launch("powershell", ["claude"], {"CLAUDE_TEMPO_ENSEMBLE": "e"}, "C:\\src", "tempo x",
                                secrets="C:\\Temp\\tempo-secrets-1")
    encoded = launch.argv.split("-ArgumentList ")[1].split(",")[-1].strip("'")
    script = base64.b64decode(encoded).decode("utf-16-le")
    assert "Get-Content -LiteralPath 'C:\\Temp\\tempo-secrets-1'" in script
    assert "Remove-Item -LiteralPath 'C:\\Temp\\tempo-secrets-1'" in script
    assert script.index("Remove-Item -LiteralPath 'C:\\Temp") < script.index("& 'claude'")
