"""Hostile config files and tokens: generated cases never crash, never write.

10,000 generated cases per property with --full (the README's figures), 1,500 otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rexec_credential.config import ConfigFile

from rexec_credential import precedence, store, tokens
from rexec_credential.errors import RexecError, StorageError

from . import rounds

CASES = rounds(full=10_000, ci=1_500)
SETTINGS = settings(max_examples=CASES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=6,
)
config_keys = st.sampled_from(["host", "token", "username", "email", "tier", "credentials",
                               "password_expiry_utc", "oauth_refresh_token", "other"])
record_keys = st.sampled_from(list(store.RECORD_KEYS) + ["ephemeral", "x"])
records = st.dictionaries(record_keys, json_values | st.text(max_size=20), max_size=8)
configs = st.dictionaries(
    config_keys,
    json_values | st.lists(records, max_size=4) | st.sampled_from(
        ["https://rexec.pipeops.io", "http://127.0.0.1:8080", "not a url",
         "rexec_" + "a" * 64]),
    max_size=8,
)
queries = st.dictionaries(st.sampled_from(list(store.MATCH_KEYS) + ["password"]),
                          st.text(max_size=20), max_size=5)


@SETTINGS
@given(st.text(max_size=200))
def test_token_classifier_never_raises_anything_but_auth_error(text):
    try:
        found = tokens.classify(text)
    except RexecError as exc:
        assert exc.exit_code == 1
        # Always one fixed line: the input is never echoed back.
        assert exc.message in ("Invalid token: empty; " + tokens.VALID_FORMS,
                               "Invalid token: malformed; " + tokens.VALID_FORMS)
    else:
        assert found in ("api", "jwt")
        tokens.expiry(text)
        assert text not in tokens.redact(text)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o700)
        yield directory


@SETTINGS
@given(raw=st.binary(max_size=200) | configs.map(lambda c: json.dumps(c).encode()))
def test_config_loader_reports_or_loads_and_never_writes(scratch, raw):
    path = os.path.join(scratch, "config.json")
    with open(path, "wb") as f:
        f.write(raw)
    os.chmod(path, 0o600)
    try:
        data = ConfigFile(scratch, lambda line: None).load()
    except StorageError as exc:
        assert exc.exit_code == 4 and "is corrupted" in exc.message
    else:
        assert isinstance(data, dict)
    with open(path, "rb") as f:
        assert f.read() == raw


@SETTINGS
@given(data=configs, query=queries)
def test_any_config_object_gives_answers_not_crashes(data, query):
    """What a hand-edited or foreign config may hold never makes get/store/erase crash."""
    try:
        precedence.resolve(data, {}, None)
    except RexecError as exc:  # e.g. a host that is not a URL
        assert exc.exit_code == 2
    found = store.find(data, query, now=1_000)
    assert found is None or isinstance(found["password"], str)
    edited = json.loads(json.dumps(data))
    store.store(edited, {"protocol": "https", "host": "h", "username": "u", "password": "p"},
                now=1_000)
    assert store.find(edited, {"protocol": "https", "host": "h", "username": "u"}, now=1_000)
    store.erase(edited, query)
    json.dumps(edited)
