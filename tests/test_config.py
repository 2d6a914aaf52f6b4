"""Configuration: flags > environment > config.toml > Temporal CLI profile > defaults, and `tempo config`."""

import os
import stat

import pytest

import tempo
from conftest import play

PROFILES = """\
[profile.default]
address = "profile-default.example:7233"
namespace = "from-profile"

[profile.cloud]
address = "acct.tmprl.cloud:7233"
namespace = "acct.ns"
api_key = "cloud-key-0123456789"
"""


def show(result) -> dict[str, tuple[str, str]]:
    """Parse `tempo config show` into {key: (value, source)}."""
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        key, value, source = line.split()
        rows[key] = (value, source)
    return rows


# -- resolution order (resolve_config with explicit flags and environment) ---------------------


@pytest.fixture
def layers(tmp_path):
    """An environment with a tempo config.toml and a Temporal profiles file, both setting the address."""
    home = tmp_path / "tempo-home"
    home.mkdir()
    (home / "config.toml").write_text('address = "file.example:7233"\n')
    profiles = tmp_path / "temporal.toml"
    profiles.write_text(PROFILES)
    return {"CLAUDE_TEMPO_HOME": str(home), "TEMPORAL_CONFIG_FILE": str(profiles), "HOME": str(tmp_path)}


@pytest.mark.parametrize(
    "args, env, keep_file, expected, source",
    [
        ({"--temporal-address": "flag.example:1"}, {"TEMPORAL_ADDRESS": "env.example:2"}, True, "flag.example:1", "flag"),
        ({}, {"TEMPORAL_ADDRESS": "env.example:2"}, True, "env.example:2", "env"),
        ({}, {}, True, "file.example:7233", "file"),
        ({}, {}, False, "profile-default.example:7233", "temporal-profile"),
    ],
    ids=["flag-beats-env", "env-beats-file", "file-beats-profile", "profile-beats-default"],
)
def test_resolution_order(layers, args, env, keep_file, expected, source):
    if not keep_file:
        os.unlink(os.path.join(layers["CLAUDE_TEMPO_HOME"], "config.toml"))
    cfg = tempo.resolve_config(args, {**layers, **env})
    assert (cfg.address, cfg.sources["address"]) == (expected, source)
    # The profile still supplies what nothing above it sets.
    assert (cfg.namespace, cfg.sources["namespace"]) == ("from-profile", "temporal-profile")


def test_defaults_when_nothing_is_configured(tmp_path):
    cfg = tempo.resolve_config({}, {"HOME": str(tmp_path), "CLAUDE_TEMPO_HOME": str(tmp_path / "t")})
    assert (cfg.address, cfg.namespace, cfg.api_key) == ("localhost:7233", "default", "")
    assert set(cfg.sources.values()) == {"default"}


def test_profile_chosen_by_flag_env_or_file(layers):
    by_flag = tempo.resolve_config({"--profile": "cloud"}, {**layers, "TEMPORAL_PROFILE": "default"})
    by_env = tempo.resolve_config({}, {**layers, "TEMPORAL_PROFILE": "cloud"})
    with open(os.path.join(layers["CLAUDE_TEMPO_HOME"], "config.toml"), "a") as f:
        f.write('profile = "cloud"\n')
    by_file = tempo.resolve_config({}, layers)
    for cfg, source in ((by_flag, "flag"), (by_env, "env"), (by_file, "file")):
        assert cfg.profile == "cloud" and cfg.sources["profile"] == source
        assert (cfg.namespace, cfg.api_key) == ("acct.ns", "cloud-key-0123456789")
        assert cfg.sources["api_key"] == "temporal-profile"


def test_unknown_profile_is_a_clear_error(layers):
    with pytest.raises(tempo.TempoError, match="profile 'nope'.*--profile"):
        tempo.resolve_config({"--profile": "nope"}, layers)


def test_profile_mtls_and_tls_settings_reach_the_sdk(tmp_path):
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\nc\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n")
    profiles = tmp_path / "temporal.toml"
    profiles.write_text(
        f'[profile.mtls]\naddress = "mtls.example:7233"\n[profile.mtls.tls]\n'
        f'client_cert_path = "{cert}"\nclient_key_path = "{key}"\nserver_name = "sni.example"\n'
    )
    env = {"HOME": str(tmp_path), "CLAUDE_TEMPO_HOME": str(tmp_path / "t"), "TEMPORAL_CONFIG_FILE": str(profiles)}
    cfg = tempo.resolve_config({"--profile": "mtls"}, env)
    assert (cfg.tls_cert, cfg.tls_key, cfg.tls_server_name) == (str(cert), str(key), "sni.example")
    tls = tempo._tls_config(cfg)
    assert tls.client_cert == cert.read_bytes() and tls.client_private_key == key.read_bytes()
    assert tls.domain == "sni.example"


def test_api_key_turns_tls_on_and_mtls_needs_both_files(tmp_path):
    assert tempo._tls_config(tempo.Config(api_key="k")) is True
    assert tempo._tls_config(tempo.Config()) is False
    assert tempo._tls_config(tempo.Config(api_key="k", tls=False)) is False
    with pytest.raises(tempo.TempoError, match="both a client certificate and its key"):
        tempo._tls_config(tempo.Config(tls_cert=str(tmp_path / "c.pem")))
    with pytest.raises(tempo.TempoError, match="cannot read the TLS client certificate"):
        tempo._tls_config(tempo.Config(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem")))


# -- tempo config set / show / unset (the real CLI) -------------------------------------------


def test_set_show_unset(cli):
    assert cli("config", "set", "address", "set.example:7233").returncode == 0
    assert cli("config", "set", "ensemble", "team").returncode == 0
    rows = show(cli("config", "show"))
    assert rows["address"] == ("set.example:7233", "file")
    assert rows["ensemble"] == ("team", "file")
    assert rows["namespace"] == ("default", "default")
    # env and flag still win over the file
    assert show(cli("config", "show", TEMPORAL_ADDRESS="env.example:1"))["address"] == ("env.example:1", "env")
    assert show(cli("config", "show", "--temporal-address", "flag.example:2"))["address"] == ("flag.example:2", "flag")
    result = cli("config", "unset", "address")
    assert result.returncode == 0 and "unset" in result.stdout
    assert show(cli("config", "show"))["address"] == ("localhost:7233", "default")
    assert "is not set" in cli("config", "unset", "address").stdout


def test_file_is_private_and_secrets_are_masked(cli):
    result = cli("config", "set", "api_key", "secret-api-key-98765")
    assert result.returncode == 0
    assert "secret-api-key" not in result.stdout and "****8765" in result.stdout
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    shown = cli("config", "show")
    assert "secret-api-key" not in shown.stdout
    assert show(shown)["api_key"] == ("****8765", "file")


def test_comments_survive_set_and_unset(cli):
    cli.config.parent.mkdir(parents=True)
    cli.config.write_text('# my Temporal settings\naddress = "a.example:7233"  # the prod cluster\n\n# keep me\nnamespace = "n"\n')
    assert cli("config", "set", "address", "b.example:7233").returncode == 0
    assert cli("config", "unset", "namespace").returncode == 0
    text = cli.config.read_text()
    assert "# my Temporal settings" in text and "# the prod cluster" in text and "# keep me" in text
    assert 'address = "b.example:7233"' in text and "namespace" not in text.replace("# keep me", "")


def test_malformed_config_is_reported_and_never_overwritten(cli):
    cli.config.parent.mkdir(parents=True)
    broken = '# hand edited\naddress = "a.example:7233"\nnamespace = = "x"\n'
    cli.config.write_text(broken)
    for argv in (("config", "set", "address", "b.example:1"), ("config", "show"), ("status",)):
        result = cli(*argv)
        assert result.returncode == 1, argv
        assert result.stderr.startswith("tempo: error: ")
        assert str(cli.config) in result.stderr and "line 3" in result.stderr and "column" in result.stderr
    assert cli.config.read_text() == broken


def test_bad_keys_and_values_are_refused(cli):
    assert "unknown key 'adress'" in cli("config", "set", "adress", "x:1").stderr
    assert "needs a port" in cli("config", "set", "address", "example.com").stderr
    assert "invalid ensemble name" in cli("config", "set", "ensemble", "a b").stderr
    assert not cli.config.exists()


def test_profile_from_temporal_envconfig_file_via_cli(cli, tmp_path):
    profiles = tmp_path / "temporal.toml"
    profiles.write_text(PROFILES)
    rows = show(cli("config", "show", "--profile", "cloud", TEMPORAL_CONFIG_FILE=str(profiles)))
    assert rows["address"] == ("acct.tmprl.cloud:7233", "temporal-profile")
    assert rows["api_key"] == ("****6789", "temporal-profile")
    assert rows["profile"] == ("cloud", "flag")
    missing = cli("config", "show", "--profile", "nope", TEMPORAL_CONFIG_FILE=str(profiles))
    assert missing.returncode == 1 and "profile 'nope'" in missing.stderr


def test_interactive_config_tests_the_connection_then_saves(cli, temporal):
    result = cli("config", input=f"{temporal.address}\ndefault\nnone\n")
    assert result.returncode == 0, result.stderr
    assert f"connected to {temporal.address}" in result.stdout
    assert show(cli("config", "show"))["address"] == (temporal.address, "file")
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600


def test_interactive_config_refuses_to_save_an_unreachable_server_unless_asked(cli):
    result = cli("config", input="127.0.0.1:1\ndefault\napi-key\nkey-123456789012\nn\n")
    assert result.returncode == 1 and "cannot connect" in result.stdout and "nothing saved" in result.stdout
    assert not cli.config.exists()
    result = cli("config", input="127.0.0.1:1\ndefault\napi-key\nkey-123456789012\ny\n")
    assert result.returncode == 0
    rows = show(cli("config", "show"))
    assert rows["address"] == ("127.0.0.1:1", "file") and rows["api_key"] == ("****9012", "file")


@pytest.mark.anyio
async def test_serve_reads_the_config_file(temporal, ensemble, tmp_path):
    home = tmp_path / "tempo-home"
    home.mkdir()
    (home / "config.toml").write_text(f'address = "{temporal.address}"\n')
    # No TEMPORAL_ADDRESS in the session's environment: only config.toml knows the server.
    async with play(temporal, ensemble, TEMPORAL_ADDRESS="", CLAUDE_TEMPO_HOME=str(home)) as p:
        listing = await p.call("ensemble")
        assert listing["ensemble"] == ensemble and len(listing["players"]) == 1
