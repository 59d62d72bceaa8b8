"""Settings (ivr.config.load_settings): defaults < YAML file < IVR_<SECTION>_<FIELD> variables.

Every test passes ``env`` explicitly, so the real environment never leaks in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ivr.config import PROJECT_ROOT, ConfigError, Settings, load_settings


def write(tmp_path: Path, text: str, name: str = "ivr.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    s = load_settings(None, env={})
    assert s.model_dump(exclude={"paths"}) == Settings().model_dump(exclude={"paths"})
    assert (s.sip.bind_address, s.sip.port, s.sip.transports) == ("127.0.0.1", 5060,
                                                                  ["udp", "tcp"])
    assert s.media.codecs == ["PCMU/8000", "PCMA/8000", "G722/16000"]
    assert s.media.clock_rate_hz == 8000
    assert s.worker.drain_timeout_s == 30.0
    assert s.paths.var_dir == PROJECT_ROOT / "var"
    assert s.db_path == PROJECT_ROOT / "var" / "ivr.sqlite3"
    assert s.paths.flow == PROJECT_ROOT / "ivr" / "flows" / "default.yaml"
    assert (s.log.level, s.log.format) == ("INFO", "json")


def test_file_values_replace_defaults_and_leave_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, """\
sip:
  port: 5080
  bind_address: 0.0.0.0
media:
  codecs: [G722/16000, PCMU/8000]
worker:
  name: w9
  drain_timeout_s: 12.5
paths:
  var_dir: /srv/ivr
""")
    s = load_settings(path, env={})
    assert (s.sip.port, s.sip.bind_address) == (5080, "0.0.0.0")
    assert s.sip.transports == ["udp", "tcp"]
    assert s.media.codecs == ["G722/16000", "PCMU/8000"]
    assert (s.worker.name, s.worker.drain_timeout_s) == ("w9", 12.5)
    assert s.db_path == Path("/srv/ivr/ivr.sqlite3")
    assert s.rtp == Settings().rtp


def test_environment_overrides_parse_values_as_yaml() -> None:
    s = load_settings(None, env={
        "IVR_SIP_PORT": "5070",
        "IVR_SIP_BIND_ADDRESS": "10.1.2.3",
        "IVR_MEDIA_CODECS": "[PCMA/8000]",
        "IVR_WORKER_DRAIN_TIMEOUT_S": "2.5",
        "IVR_PATHS_VAR_DIR": "/tmp/elsewhere",
        "HOME": "/root",  # not ours: ignored
    })
    assert s.sip.port == 5070
    assert s.sip.bind_address == "10.1.2.3"
    assert s.media.codecs == ["PCMA/8000"]
    assert s.worker.drain_timeout_s == 2.5
    assert s.paths.var_dir == Path("/tmp/elsewhere")


def test_relative_paths_resolve_from_the_file_the_environment_or_the_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    path = write(conf, "paths:\n  var_dir: ../state\n  flow: flows/main.yaml\n")
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings(path, env={"IVR_PATHS_PROMPTS_DIR": "my-prompts"})
    assert s.paths.var_dir == conf / ".." / "state"  # the settings file's directory
    assert s.paths.flow == conf / "flows" / "main.yaml"
    assert s.paths.prompts_dir == elsewhere / "my-prompts"  # the current directory
    d = load_settings(None, env={})
    assert d.paths.prompts_dir == PROJECT_ROOT / "prompts"  # not the current directory
    assert (d.paths.prompts_dir / "en-US" / "manifest.yaml").is_file()


def test_environment_keeps_names_and_addresses_as_text() -> None:
    s = load_settings(None, env={"IVR_WORKER_NAME": "7", "IVR_SIP_BIND_ADDRESS": "::1"})
    assert s.worker.name == "7"
    assert s.sip.bind_address == "::1"


def test_environment_beats_file_beats_default(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  port: 5080\n  bind_address: 10.0.0.1\n")
    s = load_settings(path, env={"IVR_SIP_PORT": "5070"})
    assert s.sip.port == 5070  # environment over file
    assert s.sip.bind_address == "10.0.0.1"  # file over default
    assert s.rtp.port_start == 40000  # default


def test_ivr_config_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "worker:\n  name: from-file\n")
    s = load_settings(None, env={"IVR_CONFIG": str(path)})
    assert s.worker.name == "from-file"


def test_an_explicit_path_wins_over_ivr_config(tmp_path: Path) -> None:
    a = write(tmp_path, "worker:\n  name: a\n", "a.yaml")
    b = write(tmp_path, "worker:\n  name: b\n", "b.yaml")
    assert load_settings(a, env={"IVR_CONFIG": str(b)}).worker.name == "a"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing set\n"), env={}) == load_settings(None, {})


def test_bad_port_in_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "# settings\nsip:\n  bind_address: 127.0.0.1\n  port: 70000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == (
        f"invalid settings:\n  {path}:4: sip.port: Input should be less than or equal to 65535"
    )


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  port: 5080\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"IVR_SIP_PORT": "fifty"})
    assert str(info.value) == (
        "invalid settings:\n  environment variable IVR_SIP_PORT: sip.port: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_bad_environment_list_item_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"IVR_MEDIA_CODECS": "[PCMA/8000, GSM/8000]"})
    assert str(info.value).startswith(
        "invalid settings:\n  environment variable IVR_MEDIA_CODECS: media.codecs.1: ")


def test_bad_bind_address_from_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="environment variable IVR_SIP_BIND_ADDRESS: "
                                          "sip.bind_address: .*'localhost' is not an IP address"):
        load_settings(None, env={"IVR_SIP_BIND_ADDRESS": "localhost"})


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  port: 0\nlog:\n  level: LOUD\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"IVR_RTP_PORT_RANGE": "1"})
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [
        f"{path}:2", "environment variable IVR_RTP_PORT_RANGE", f"{path}:4"]


def test_unknown_section_in_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "sipp:\n  port: 5070\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == f"invalid settings:\n  {path}:1: sipp: Extra inputs are not permitted"


def test_unknown_field_in_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  port: 5070\n  prot: 5071\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == (
        f"invalid settings:\n  {path}:3: sip.prot: Extra inputs are not permitted"
    )


def test_unknown_environment_variable_is_refused() -> None:
    with pytest.raises(ConfigError, match="IVR_SIP_PROT"):
        load_settings(None, env={"IVR_SIP_PROT": "5070"})


def test_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "- sip\n- rtp\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == f"{path}:1: settings are a mapping of sections (sip, rtp, ...)"


def test_section_that_is_not_a_mapping_is_refused_even_with_an_env_override(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "sip: 5070\n")
    expected = re.escape(f"{path}:1: sip: Input should be a valid dict")
    for env in ({}, {"IVR_SIP_PORT": "5070"}):
        with pytest.raises(ConfigError, match=expected):
            load_settings(path, env=env)


def test_file_that_is_not_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  port: [5060\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value).startswith(f"{path}:3:1: not valid YAML: ")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == f"{path}: cannot read: No such file or directory"


def test_to_yaml_round_trips_through_load_settings(tmp_path: Path) -> None:
    original = load_settings(None, env={
        "IVR_SIP_PORT": "5070",
        "IVR_SIP_PUBLIC_ADDRESS": "203.0.113.5",
        "IVR_SIP_TRANSPORTS": "[udp]",
        "IVR_MEDIA_CODECS": "[PCMA/8000]",
        "IVR_MEDIA_CLOCK_RATE_HZ": "16000",
        "IVR_WORKER_DRAIN_TIMEOUT_S": "7.5",
        "IVR_PATHS_VAR_DIR": "/srv/ivr",
        "IVR_LOG_FORMAT": "text",
    })
    path = write(tmp_path, original.to_yaml(), "shown.yaml")
    assert load_settings(path, env={}) == original


def test_to_yaml_of_the_defaults_round_trips(tmp_path: Path) -> None:
    defaults = load_settings(None, env={})  # paths made absolute
    path = write(tmp_path, defaults.to_yaml(), "defaults.yaml")
    assert load_settings(path, env={}) == defaults


def test_every_setting_is_documented_with_its_variable_and_default() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    rows = {m.group(1): (m.group(2), m.group(3))
            for m in re.finditer(r"^\| `([a-z_.]+)` \| `([A-Z_]+)` \| `([^`]*)` \|$", doc, re.M)}
    defaults = Settings()
    expected = {}
    for section in Settings.model_fields:
        sect = getattr(defaults, section)
        for field in type(sect).model_fields:
            value = getattr(sect, field)
            if isinstance(value, bool):
                text = str(value).lower()
            elif isinstance(value, list):
                text = ", ".join(map(str, value))
            else:
                text = str(value)
            expected[f"{section}.{field}"] = (f"IVR_{section.upper()}_{field.upper()}", text)
    assert rows == expected
    for name in expected:  # and each has a line saying what it means
        assert f"`{name}`" in doc.split("## Meanings", 1)[1], f"{name} has no meaning written"


def test_a_session_interval_below_the_rfc_4028_minimum_is_refused() -> None:
    with pytest.raises(ConfigError, match="below the 90 s minimum of RFC 4028"):
        load_settings(None, env={"IVR_SIP_SESSION_EXPIRES_S": "60"})
    assert load_settings(None, env={"IVR_SIP_SESSION_EXPIRES_S": "0"}).sip.session_expires_s == 0


def test_one_source_may_hold_half_the_fronts_calls_unless_configured() -> None:
    from ivr.front import front_max_calls, front_max_calls_per_source

    defaults = load_settings(None, env={})
    assert front_max_calls(defaults) == 64 * 4  # the pool's capacity
    assert front_max_calls_per_source(defaults) == 128
    small = load_settings(None, env={"IVR_FRONT_MAX_CALLS": "1"})
    assert front_max_calls_per_source(small) == 1  # never 0 (that would mean no limit)
    trunk = load_settings(None, env={"IVR_FRONT_MAX_CALLS_PER_SOURCE": "0"})
    assert front_max_calls_per_source(trunk) == 0


def test_the_agent_api_listens_on_IVR_HTTP_PORT_at_the_sip_address_unless_told() -> None:
    defaults = load_settings(None, env={})
    assert (defaults.http.enabled, defaults.http.port) == (True, 8080)
    assert defaults.http_bind_address == defaults.sip.bind_address == "127.0.0.1"
    moved = load_settings(None, env={"IVR_HTTP_PORT": "9090", "IVR_SIP_BIND_ADDRESS": "127.0.0.2"})
    assert (moved.http.port, moved.http_bind_address) == (9090, "127.0.0.2")
    own = load_settings(None, env={"IVR_HTTP_BIND_ADDRESS": "127.0.0.3"})
    assert own.http_bind_address == "127.0.0.3"
    with pytest.raises(ConfigError, match="IVR_HTTP_PORT: http.port"):
        load_settings(None, env={"IVR_HTTP_PORT": "0"})
    with pytest.raises(ConfigError, match="IVR_HTTP_BIND_ADDRESS: http.bind_address"):
        load_settings(None, env={"IVR_HTTP_BIND_ADDRESS": "localhost"})
