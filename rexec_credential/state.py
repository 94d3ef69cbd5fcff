"""Everything stored about logins and credentials, and the rules for changing it. Pure.

A `State` is what the two files hold, read by storage.py:

- `config` — the config.json object: the active login as the Rexec CLI's five flat fields
  (host, token, username, email, tier), plus any keys someone else put there (kept);
- `accounts` — every Rexec login made here (credentials.json), newest first;
- `credentials` — every credential `rexec-credential store` kept for other hosts or
  users (credentials.json), newest first, as git credential records.

Facts about the active login (git's expiry and refresh token) are kept in its account,
found by its token: when the Rexec CLI writes another token into config.json, they stop
applying. Tokens in `keep_out` (REXEC_TOKEN's value) are never written.

An earlier layout kept everything in config.json (a `credentials` list, and the active
login's `password_expiry_utc` and `oauth_refresh_token` beside its fields); it is read
as if split, and split on the next write.

The operations only change the contents; nothing here records *that* they did. What the
files must hold is `config_content()` (None: config.json has no key left, so it goes, as
logging out of the active login wants) and `stored_content()`; storage.py writes a file
only when that differs from what it read.
"""

from __future__ import annotations

import json

from . import records, tokens
from .accounts import CONFIG_FIELDS, Account
from .errors import StorageError
from .protocol import CREDENTIAL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Collection, Mapping

    from .accounts import Login
    from .records import Query, Record

FORMAT_VERSION = 1
LEGACY_LIST = "credentials"  # config.json's list in the earlier layout
LEGACY_FACTS = ("password_expiry_utc", "oauth_refresh_token")


class State:
    """The contents of config.json and credentials.json, with the operations on them."""

    __slots__ = ("config", "accounts", "credentials", "other", "keep_out")

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        stored: Mapping[str, Any] | None = None,
        keep_out: Collection[str] = (),
    ) -> None:
        config = dict(config or {})
        stored = dict(stored or {})
        accounts = stored.pop("accounts", None)
        credentials = stored.pop("credentials", None)
        stored.pop("version", None)
        self.config = config
        self.accounts = [a for a in map(Account.from_json, _list(accounts)) if a is not None]
        self.credentials = _list(credentials)  # entries kept as they are, read when matched
        self.other = stored  # keys of credentials.json someone else put there: kept
        self.keep_out = frozenset(t for t in keep_out if t)
        self._read_legacy_layout()

    # -- reading ---------------------------------------------------------------------------

    def active(self) -> Account | None:
        """The active login (config.json's), with the facts its account holds."""
        active = Account.from_config(self.config)
        if active is None:
            return None
        known = self._account_with_token(active.token, active.host)
        if known is not None:
            active.created_at = known.created_at
            active.stored_expiry = known.stored_expiry
            active.refresh_token = known.refresh_token
            active.token_id, active.token_name, active.token_expiry = known.device_facts()
        return active

    def logins(self) -> list[Login]:
        """Every Rexec login: (account, is_active), the active one first."""
        active = self.active()
        found: list[Login] = [(active, True)] if active else []
        return found + [
            (a, False)
            for a in self.accounts
            if not (active and (a.token, a.host) == (active.token, active.host))
        ]

    def find(
        self, query: Query, now: float, capable: bool = False, bearer: bool = False
    ) -> Record | None:
        """The first record that answers a request (see `match`)."""
        found = self.match(query, now, capable, bearer)
        return None if found is None else found[0]

    def match(
        self, query: Query, now: float, capable: bool = False, bearer: bool = False
    ) -> tuple[Record, Account | None] | None:
        """The first record that answers a request, and the login it is (None for a
        credential git stored): the active login, the other accounts, then the
        credentials git stored, newest first. Expired records are skipped, and so are
        records git's protocol cannot carry (a hand-edited value with a line break), as
        if they were not there; see `records.refusal`.

        `capable`: the request announced `capability[]=authtype`, so a stored authtype and
        credential may answer it; with `bearer` too, a login answers that way
        (`records.bearer`).
        """
        for account, _ in self.logins():
            record = account.record()
            if records.refusal(query, record, now, capable, host_wide=True) is None:
                return (records.bearer(record) if bearer and capable else record), account
        host, protocol = query.get("host"), query.get("protocol")
        for entry in self.credentials:
            # The cheap comparisons first: this loop may see thousands of entries.
            if (
                not isinstance(entry, dict)
                or (host is not None and entry.get("host") != host)
                or (protocol is not None and entry.get("protocol") != protocol)
            ):
                continue
            if records.well_formed(entry) and records.matches(query, entry):
                answer = _answer(entry)
                if records.refusal(query, answer, now, capable) is None:
                    return answer, None
        return None

    def explain(self, query: Query, now: float, capable: bool = False) -> list[str]:
        """Why no record answers a request, for a trace: each login and the reason it
        does not, then the stored credentials counted by reason (never a secret)."""
        lines = []
        for account, active in self.logins():
            why = records.refusal(query, account.record(), now, capable, host_wide=True)
            mark = " (active)" if active else ""
            lines.append(f"login {account.describe()}{mark}: {why or 'answers'}")
        counts: dict[str, int] = {}
        for entry in self.credentials:
            if not records.well_formed(entry):
                why = "not a credential (hand-edited?)"
            else:
                why = records.refusal(query, _answer(entry), now, capable) or "answers"
            counts[why] = counts.get(why, 0) + 1
        if not self.logins():
            lines.append("no login is stored")
        if counts:
            total = sum(counts.values())
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(counts.items()))
            lines.append(f"{total} stored credential{'s' if total != 1 else ''}: {reasons}")
        else:
            lines.append("no credential is stored")
        return lines

    def select(self, host: str | None, username: str | None) -> list[Login]:
        """The logins on host (a normalised URL) as username; None matches any."""
        return [
            (account, active)
            for account, active in self.logins()
            if (host is None or account.host == host)
            and (username is None or account.username == username)
        ]

    # -- git's store and erase -------------------------------------------------------------

    def store(self, request: Query, now: float) -> None:
        """Keep a credential git hands over.

        For a Rexec login's host and user it replaces that login's token (the active one
        in config.json too); otherwise it is one credential per protocol, host, username
        and path, a new password replacing the old.
        """
        new = records.storable(request, now)
        if new is None or any(new.get(key) in self.keep_out for key in records.SECRET_KEYS):
            return
        if records.has_credential(new):
            # An authtype and credential are kept as any credential, except a login's own
            # token coming back (git stores what `--bearer get` answered): already stored.
            for account, _ in self.logins():
                login = records.holding_token(account.record())
                if new[CREDENTIAL] == account.token and records.matches(new, login, host_wide=True):
                    return
        elif "password" in new:
            for account, active in self.logins():
                if records.same_login(account.record(), new):
                    self._renew(account, active, new, now)
                    return
        if new in self.credentials:
            return  # where it is: storing it again must not move it
        self.credentials = [new] + [
            c for c in self.credentials if not (isinstance(c, dict) and records.same_slot(c, new))
        ]

    def erase(self, pattern: Query) -> None:
        """Remove every matching credential and login.

        git erases what the server refused: the active login's token leaves config.json
        (its host and other keys stay) so that it is not handed out again.
        """
        if not records.erasable(pattern):
            return
        pattern = records.announced(pattern)
        # git 2.42: a different password erases nothing; a credential likewise (a login's
        # token counts as both: git erases it in the form it was answered in).
        with_password = any(key in pattern for key in records.SECRET_KEYS)
        for account, active in self.logins():
            login = records.holding_token(account.record())
            if records.matches(pattern, login, with_password, host_wide=True):
                self._forget(account, active)
        self.credentials = [
            c
            for c in self.credentials
            if not (records.well_formed(c) and records.matches(pattern, c, with_password))
        ]

    # -- logging in and out ----------------------------------------------------------------

    def log_in(self, account: Account) -> None:
        """Make a new login the active one and keep it as an account; nothing changes for
        a token that must not be written (the caller says so: `precedence.kept_out`).

        A login as the same user on the same host replaces that account; the login it
        replaces as the active one stays an account (also one the Rexec CLI wrote), and
        copies git stored for the same host and user go (the login owns them).
        """
        if account.token in self.keep_out:
            return
        same = self._account_with_token(account.token, account.host)
        if same is not None and same.same_login(account):  # facts git stored still apply
            account.stored_expiry, account.refresh_token = same.stored_expiry, same.refresh_token
        self._keep_active_as_account(account.created_at)
        self.accounts = [account] + [a for a in self.accounts if not a.same_login(account)]
        record = account.record()
        self.credentials = [
            c
            for c in self.credentials
            if not (isinstance(c, dict) and records.same_login(c, record))
        ]
        self._set_active(account)

    def switch(self, account: Account, now: float) -> None:
        """Make a stored account the active login (config.json gets its five fields)."""
        current = next((a for a in self.accounts if a.same_login(account)), account)
        self._keep_active_as_account(int(now))
        self._set_active(current)

    def renew(self, old: Account, new: Account) -> None:
        """Put a login's new token (rexec-login --renew) in place of its old one: the same
        place among the accounts, still the active login if it was; copies git stored of
        the old token go. StorageError when the old token is no longer stored (logged out
        meanwhile): nothing changes."""
        found = self._account_with_token(old.token, old.host)
        active = self.active()
        is_active = active is not None and (active.token, active.host) == (old.token, old.host)
        if found is None and not is_active:
            raise StorageError(
                f"the login of {old.describe()} was removed while it was renewed; nothing changed"
            )
        new.created_at = found.created_at if found is not None else new.created_at
        if found is None:
            self.accounts.insert(0, new)
        else:
            self.accounts = [new if a is found else a for a in self.accounts]
        self._drop_copies(old.token)
        if is_active:
            self.config["token"] = new.token

    def log_out(self, account: Account, active: bool) -> None:
        """Forget a login: its token leaves both files; for the active login config.json
        goes completely."""
        self._drop_token(account.token)
        if active or self.config.get("token") == account.token:
            self.config = {}

    def drop_config(self) -> None:
        """Forget config.json's login whatever it holds (its host may not be a URL at all):
        its token leaves both files, config.json goes completely."""
        token = self.config.get("token")
        if isinstance(token, str) and token:
            self._drop_token(token)
        self.config = {}

    def _drop_token(self, token: str) -> None:
        self.accounts = [a for a in self.accounts if a.token != token]
        self._drop_copies(token)

    def _drop_copies(self, token: str) -> None:
        """Credentials git stored that hold this token."""
        self.credentials = [
            c
            for c in self.credentials
            if not (isinstance(c, dict) and token in (c.get("password"), c.get(CREDENTIAL)))
        ]

    # -- the files' contents ---------------------------------------------------------------

    def config_content(self) -> dict[str, Any] | None:
        """What config.json must hold: the five fields in the Rexec CLI's order, then
        other keys; None (no file) when nothing is left."""
        return config_content(self.config)

    def stored_content(self) -> dict[str, Any]:
        """What credentials.json must hold (no file and one holding nothing read alike)."""
        return {
            "version": FORMAT_VERSION,
            **self.other,
            "accounts": [a.to_json() for a in self.accounts],
            "credentials": self.credentials,
        }

    # -- inside ----------------------------------------------------------------------------

    def _account_with_token(self, token: str, host: str) -> Account | None:
        return next((a for a in self.accounts if (a.token, a.host) == (token, host)), None)

    def _set_active(self, account: Account) -> None:
        self.config.update(account.config_fields())

    def _keep_active_as_account(self, now: int | None) -> None:
        """Before the active login is replaced: make sure it is an account (nothing lost)."""
        active = self.active()
        if active is None or active.token in self.keep_out:
            return
        if self._account_with_token(active.token, active.host) is None:
            # The Rexec CLI wrote it (or git erased its account): same user, newer token.
            active.created_at = now
            self.accounts = [a for a in self.accounts if not a.same_login(active)] + [active]

    def _renew(self, account: Account, active: bool, new: Query, now: float) -> None:
        """git stored a token, and what it knows of it, for a login's host and user."""
        token = new["password"]
        facts = (
            token,
            _own_expiry(new.get("password_expiry_utc"), token),
            new.get("oauth_refresh_token", ""),
        )
        if active:
            already = self.config.get("token") == token
            self.config["token"] = token
            kept = self._account_with_token(account.token, account.host)
            if kept is None:
                if already and facts[1:] == (None, ""):
                    return  # config.json holds it already, and there is nothing to add
                kept = Account(
                    account.host,
                    account.username,
                    token,
                    account.email,
                    account.tier,
                    created_at=int(now),
                )
                self.accounts = [kept] + [a for a in self.accounts if not a.same_login(kept)]
            account = kept
        if (account.token, account.stored_expiry, account.refresh_token) != facts:
            if account.token != token:
                account.forget_device_facts()  # git's new token is not the one made here
            account.token, account.stored_expiry, account.refresh_token = facts

    def _forget(self, account: Account, active: bool) -> None:
        self.accounts = [a for a in self.accounts if a.token != account.token]
        if active:
            for key in ("token", "username", "email", "tier"):
                self.config.pop(key, None)

    def _read_legacy_layout(self) -> None:
        legacy = self.config.pop(LEGACY_LIST, None)
        if legacy is not None:
            # A split killed between its two renames left the list in both files: keep
            # each entry once.
            seen = {json.dumps(c, sort_keys=True) for c in self.credentials}
            self.credentials = self.credentials + [
                c for c in _list(legacy) if json.dumps(c, sort_keys=True) not in seen
            ]
        facts = {k: self.config.pop(k) for k in LEGACY_FACTS if k in self.config}
        if facts:
            active = Account.from_config(self.config)
            if active is not None and active.token not in self.keep_out:
                active.stored_expiry = _own_expiry(
                    records.expiry_value(facts.get("password_expiry_utc")), active.token
                )
                refresh = facts.get("oauth_refresh_token")
                active.refresh_token = refresh if isinstance(refresh, str) else ""
                self.accounts = [a for a in self.accounts if a.token != active.token]
                self.accounts.insert(0, active)


def config_content(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """config.json's object as written (the five fields first); None when it is empty."""
    if not config:
        return None
    ordered = {k: config[k] for k in CONFIG_FIELDS if k in config}
    ordered.update((k, v) for k, v in config.items() if k not in ordered)
    return ordered


def _own_expiry(expiry: int | None, token: str) -> int | None:
    """An expiry worth keeping beside the token: not the one a JWT says itself."""
    return None if expiry is not None and expiry == tokens.expiry(token) else expiry


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _answer(entry: Query) -> Record:
    """A stored credential as `get` answers it: its expiry as a number, or its JWT's `exp`
    (a password's, or else a credential's)."""
    record = dict(entry)
    secret = record.get("password", record.get(CREDENTIAL)) or ""
    exp = records.expiry_value(record.get("password_expiry_utc")) or tokens.expiry(secret)
    if exp is None:
        record.pop("password_expiry_utc", None)
    else:
        record["password_expiry_utc"] = exp
    return record
