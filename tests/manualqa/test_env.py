from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from manualqa.env import env_bool, env_int, env_list, parse_database_url


def test_env_bool_accepts_common_spellings(monkeypatch):
    for raw, expected in [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("FLAG", raw)
        assert env_bool("FLAG") is expected


def test_env_bool_refuses_a_typo_naming_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "yess")
    with pytest.raises(ImproperlyConfigured, match="DEBUG='yess' is not a boolean"):
        env_bool("DEBUG")


def test_env_int_refuses_non_numbers_and_values_below_minimum(monkeypatch):
    monkeypatch.setenv("PAGES", "ten")
    with pytest.raises(ImproperlyConfigured, match="PAGES='ten' is not an integer"):
        env_int("PAGES", 1)
    monkeypatch.setenv("PAGES", "0")
    with pytest.raises(ImproperlyConfigured, match="must be at least 1"):
        env_int("PAGES", 5, minimum=1)


def test_unset_variables_fall_back_to_defaults(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    assert env_int("NOT_SET_ANYWHERE", 7) == 7
    assert env_list("NOT_SET_ANYWHERE", ["a"]) == ["a"]


def test_database_url_with_a_unix_socket_host():
    config = parse_database_url("postgresql://postgres:@/manualqa?host=/tmp/pg")
    assert config["NAME"] == "manualqa"
    assert config["HOST"] == "/tmp/pg"
    assert config["USER"] == "postgres"


def test_database_url_with_tcp_host_password_and_options():
    config = parse_database_url("postgres://app:s%40cret@db.internal:6543/qa?sslmode=require")
    assert (config["HOST"], config["PORT"], config["PASSWORD"]) == ("db.internal", "6543", "s@cret")
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_database_url_must_be_postgresql():
    with pytest.raises(ImproperlyConfigured, match="pgvector is required"):
        parse_database_url("sqlite:///db.sqlite3")
