"""m2x.runtime.settings: defaults < TOML file < M2X_<FIELD> < M2X_<COMPONENT>_<FIELD> < flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from m2x.runtime.settings import (
    SettingsError,
    add_flags,
    load_settings,
    non_negative,
    one_of,
    port,
    positive,
    setting,
    settings_flags,
)


@dataclass(frozen=True, slots=True)
class Demo:
    name: str = setting("demo", "a name")
    workers: int = setting(4, "worker count", positive)
    ratio: float = setting(0.5, "a ratio", non_negative)
    verbose: bool = setting(False, "chatty logs")
    data_dir: Path = setting(Path("var"), "data directory")
    peers: tuple[str, ...] = setting((), "peer addresses")
    level: str = setting("INFO", "log level", one_of("DEBUG", "INFO", "ERROR"))
    listen_port: int = setting(8080, "port", port)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m2x.toml"
    path.write_text(text)
    return path


def test_defaults_when_nothing_is_set() -> None:
    assert load_settings(Demo, "demo", environ={}) == Demo()


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    config = write(tmp_path, 'name = "top"\nworkers = 2\nratio = 0.1\nlevel = "DEBUG"\n'
                             '[demo]\nworkers = 3\nratio = 0.2\n')  # fmt: skip
    environ = {
        "M2X_RATIO": "0.3",
        "M2X_VERBOSE": "yes",
        "M2X_LEVEL": "ERROR",
        "M2X_DEMO_LEVEL": "INFO",
        "M2X_DEMO_DATA_DIR": "/srv/m2x",
    }
    flags = {"verbose": "false", "listen_port": "0", "workers": None}

    settings = load_settings(Demo, "demo", flags=flags, config_file=config, environ=environ)

    assert settings == Demo(
        name="top",  # top-level file key, nothing above it
        workers=3,  # [demo] table beats the top level; a None flag is "not given"
        ratio=0.3,  # M2X_RATIO beats the file
        verbose=False,  # the flag beats M2X_VERBOSE
        data_dir=Path("/srv/m2x"),
        level="INFO",  # M2X_DEMO_LEVEL beats M2X_LEVEL
        listen_port=0,
    )


def test_only_this_components_environment_and_table_apply(tmp_path: Path) -> None:
    config = write(tmp_path, "[other]\nworkers = 9\n")
    environ = {"M2X_OTHER_WORKERS": "8", "WORKERS": "7"}
    assert load_settings(Demo, "demo", config_file=config, environ=environ) == Demo()


def test_values_are_coerced_to_the_field_types(tmp_path: Path) -> None:
    config = write(tmp_path, 'peers = ["a:1", " b:2 ", ""]\nverbose = true\nratio = 2\n')
    settings = load_settings(Demo, "demo", config_file=config, environ={})
    assert (settings.peers, settings.verbose, settings.ratio) == (("a:1", "b:2"), True, 2.0)

    environ = {"M2X_PEERS": "x:1, y:2,,", "M2X_WORKERS": "12", "M2X_DATA_DIR": "rel/dir"}
    settings = load_settings(Demo, "demo", environ=environ)
    assert settings.peers == ("x:1", "y:2")
    assert settings.workers == 12
    assert settings.data_dir == Path("rel/dir")

    for text, expected in (("1", True), ("on", True), ("TRUE", True), ("0", False),
                           ("no", False), ("Off", False)):  # fmt: skip
        assert load_settings(Demo, "demo", environ={"M2X_VERBOSE": text}).verbose is expected


def test_flags_from_argparse(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, Demo)
    args = parser.parse_args(["--workers", "7", "--data-dir", str(tmp_path), "--peers", "p:1"])
    settings = load_settings(Demo, "demo", flags=args, environ={"M2X_WORKERS": "5"})
    assert (settings.workers, settings.data_dir, settings.peers) == (7, tmp_path, ("p:1",))
    assert settings.name == "demo"


def test_config_file_named_by_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path, "[demo]\nname = 'from M2X_CONFIG'\n")
    settings = load_settings(Demo, "demo", environ={"M2X_CONFIG": str(config)})
    assert settings.name == "from M2X_CONFIG"


def test_every_bad_value_is_named_in_one_error(tmp_path: Path) -> None:
    config = write(tmp_path, '[demo]\nlevel = "LOUD"\nname = ["not", "a", "string"]\n')
    environ = {"M2X_WORKERS": "many", "M2X_DEMO_VERBOSE": "maybe"}
    flags = {"ratio": "-1", "listen_port": "70000"}

    with pytest.raises(SettingsError) as caught:
        load_settings(Demo, "demo", flags=flags, config_file=config, environ=environ)

    problems = caught.value.problems
    assert len(problems) == 6, problems
    text = str(caught.value)
    for source in ("config file key 'level'", "config file key 'name'", "M2X_WORKERS",
                   "M2X_DEMO_VERBOSE", "--ratio", "--listen-port"):  # fmt: skip
        assert sum(source in p for p in problems) == 1, (source, problems)
        assert source in text
    assert any("must be one of DEBUG, INFO, ERROR" in p for p in problems)
    assert any("'many'" in p and "integer" in p for p in problems)
    assert any("true or false" in p for p in problems)
    assert any("0 or more" in p for p in problems)
    assert any("port number" in p for p in problems)


def test_a_fractional_number_for_an_integer_setting_is_refused(tmp_path: Path) -> None:
    """`workers = 2.5` must be named as a bad value, not silently become 2."""
    with pytest.raises(SettingsError) as environment_error:
        load_settings(Demo, "demo", environ={"M2X_WORKERS": "2.5"})
    assert "M2X_WORKERS" in str(environment_error.value)

    config = write(tmp_path, "[demo]\nworkers = 2.5\n")
    with pytest.raises(SettingsError) as file_error:
        load_settings(Demo, "demo", config_file=config, environ={})
    assert "config file key 'workers'" in str(file_error.value)


def test_a_check_refuses_a_value_from_any_layer() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(Demo, "demo", environ={"M2X_DEMO_WORKERS": "0"})
    assert caught.value.problems == ["M2X_DEMO_WORKERS='0': must be greater than 0"]


def test_unknown_key_in_the_components_own_table_is_an_error(tmp_path: Path) -> None:
    config = write(tmp_path, "[demo]\nworkers = 2\nwrokers = 3\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(Demo, "demo", config_file=config, environ={})
    assert caught.value.problems == ["config file key [demo].wrokers: unknown setting"]

    # Top-level keys and other components' tables are shared, so unknown ones there pass.
    config = write(tmp_path, "shared_thing = 1\n[demo]\nworkers = 2\n[other]\nwrokers = 3\n")
    assert load_settings(Demo, "demo", config_file=config, environ={}).workers == 2


def test_unknown_keys_are_reported_with_bad_values(tmp_path: Path) -> None:
    config = write(tmp_path, '[demo]\nworkers = "x"\ntypo = 1\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(Demo, "demo", config_file=config, environ={})
    assert len(caught.value.problems) == 2


def test_unreadable_config_files_are_settings_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"missing\.toml"):
        load_settings(Demo, "demo", config_file=tmp_path / "missing.toml", environ={})
    broken = write(tmp_path, "[demo\nworkers = 2\n")
    with pytest.raises(SettingsError, match=r"m2x\.toml"):
        load_settings(Demo, "demo", config_file=broken, environ={})


def test_settings_flags_give_a_copy_the_same_settings() -> None:
    wanted = Demo(name="x y", workers=2, ratio=0.25, verbose=True, data_dir=Path("/d"),
                  peers=("a:1", "b:2"), level="DEBUG", listen_port=0)  # fmt: skip
    parser = argparse.ArgumentParser()
    add_flags(parser, Demo)
    flags = parser.parse_args(settings_flags(wanted))
    assert load_settings(Demo, "demo", flags=flags, environ={"M2X_WORKERS": "7"}) == wanted
