"""OpenID Connect login against the city's identity provider (e.g. its Keycloak): the protocol side.

Authorization code flow with PKCE (S256), state and nonce, for a confidential client:

1. /api/v1/auth/oidc/login makes a `Transaction` (random state, nonce and PKCE verifier), seals it
   with the deployment's secrets key into a short-lived cookie scoped to the callback path, and
   sends the browser to the provider's authorization endpoint.
2. The provider sends the browser back to /api/v1/auth/oidc/callback with a code. The callback
   opens the cookie (so a response the browser did not ask for, or a forged state, is refused),
   exchanges the code at the token endpoint with the verifier and the client secret, and checks
   the ID token (`finish`): signature with the provider's published keys (asymmetric algorithms
   only), iss, aud/azp, exp/iat/nbf, and the nonce. Groups and profile come from the ID token or,
   when it does not carry them, from the userinfo endpoint (for the same subject).
3. `grant_for` turns the user's groups into a role and camera groups through CSU_OIDC_ROLE_MAP.

The cookie, not server memory, carries the transaction so that any gateway replica can finish a
login another one started. The provider's metadata and keys are cached; keys are fetched again
when a token names a key id not seen yet (the provider rotated its keys), at most once a minute.

Second factor: the provider is responsible for MFA. The gateway does not ask its own TOTP of OIDC
users; it records the ID token's `amr` and `acr` claims in the audit entry of every login, so
auditors see how each user authenticated.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from services.common.clock import Clock, to_us
from services.common.secretbox import SecretBox, SecretBoxError
from services.common.settings import Settings
from services.gateway.errors import Refusal
from services.gateway.identity.roles import ROLES

CALLBACK_PATH = "/api/v1/auth/oidc/callback"
LOGIN_PATH = "/api/v1/auth/oidc/login"
# The browser has this long between leaving for the provider and coming back.
LOGIN_WINDOW_S = 600
# Clock skew tolerated between the provider and the gateway on iat/exp/nbf.
LEEWAY_S = 60
METADATA_TTL_S = 3600.0
JWKS_REFRESH_MIN_S = 60.0
# Never "none" nor HS*: an ID token must be signed with a key only the provider holds.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class OidcError(Refusal):
    """A refused or failed OIDC login; status is the HTTP status to answer with, message names why."""


@dataclass(frozen=True)
class Transaction:
    """One login in progress: what the callback must find again."""

    state: str
    nonce: str
    verifier: str
    started_us: int

    @classmethod
    def new(cls, clock: Clock) -> "Transaction":
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),  # 86 characters: within RFC 7636's 43..128
            started_us=to_us(clock.now()),
        )

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def seal(self, box: SecretBox) -> str:
        return box.seal(json.dumps(asdict(self)))

    @classmethod
    def open(cls, box: SecretBox, sealed: str | None, clock: Clock) -> "Transaction":
        if not sealed:
            raise OidcError(
                400, "no login in progress in this browser (it expired, or was started elsewhere): log in again"
            )
        try:
            tx = cls(**json.loads(box.open(sealed)))
        except (SecretBoxError, ValueError, TypeError) as exc:
            raise OidcError(400, "the login cookie is not valid: log in again") from exc
        if to_us(clock.now()) - tx.started_us > LOGIN_WINDOW_S * 1_000_000:
            raise OidcError(400, f"the login took longer than {LOGIN_WINDOW_S // 60} minutes: log in again")
        return tx

    def check_state(self, state: str | None) -> None:
        if not state or not hmac.compare_digest(state.encode(), self.state.encode()):
            raise OidcError(
                400, "the provider's answer does not belong to the login this browser started (state): log in again"
            )


@dataclass(frozen=True)
class Metadata:
    """The parts of the provider's discovery document the gateway uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    algorithms: tuple[str, ...]
    client_auth: str  # client_secret_basic or client_secret_post
    # RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0); None when the provider has none.
    end_session_endpoint: str | None = None


@dataclass(frozen=True)
class Verified:
    """A login the provider vouched for: the validated ID token's claims and the user's groups."""

    claims: dict[str, Any]
    groups: list[str]
    # The ID token itself, kept (sealed) with the session as the hint of its logout; never logged.
    id_token: str = field(default="", repr=False)

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def username_hint(self) -> str:
        for name in ("preferred_username", "email"):
            value = self.claims.get(name)
            if isinstance(value, str) and value.strip():
                return value.split("@")[0] if name == "email" else value
        return self.subject

    @property
    def display_name(self) -> str:
        name = self.claims.get("name")
        return name.strip() if isinstance(name, str) and name.strip() else self.username_hint

    @property
    def how(self) -> dict[str, Any]:
        """How the provider authenticated the user (for the audit trail)."""
        return {"amr": self.claims.get("amr"), "acr": self.claims.get("acr")}


@dataclass(frozen=True)
class Grant:
    role: str
    camera_groups: list[str]
    groups: list[str]  # the provider groups that granted it


def _groups_from(claims: dict[str, Any], claim: str) -> list[str] | None:
    """The groups claim (a dotted path reaches a nested one), or None when the claims lack it."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


class OidcClient:
    """The gateway as a client of one OpenID Connect provider (configured by the CSU_OIDC_* settings)."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = bool(settings.oidc_issuer)
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self._secret = settings.oidc_client_secret
        self.redirect_uri = settings.oidc_redirect_base_url + CALLBACK_PATH
        self.post_logout_redirect_uri = settings.oidc_redirect_base_url + "/"
        self.scopes = settings.oidc_scopes
        self.groups_claim = settings.oidc_groups_claim
        self.role_map = settings.oidc_role_map
        self.timeout_s = settings.oidc_timeout_s
        self.display_name = settings.oidc_display_name or (urlsplit(self.issuer).hostname or "")
        self._metadata: tuple[float, Metadata] | None = None
        self._keys: KeySet | None = None
        self._keys_fetched = 0.0
        if self.enabled:
            self._check_configuration(settings)

    def _check_configuration(self, settings: Settings) -> None:
        # At start-up: a half-configured single sign-on must stop the gateway, not a user's login.
        missing = [
            name
            for name, value in (
                ("CSU_OIDC_CLIENT_ID", settings.oidc_client_id),
                ("CSU_OIDC_CLIENT_SECRET", settings.oidc_client_secret.get_secret_value()),
                ("CSU_OIDC_REDIRECT_BASE_URL", settings.oidc_redirect_base_url),
                ("CSU_OIDC_ROLE_MAP", settings.oidc_role_map),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"CSU_OIDC_ISSUER is set: {', '.join(missing)} must be set too")
        unknown = sorted({g.role for g in self.role_map.values()} - ROLES)
        if unknown:
            raise ValueError(f"CSU_OIDC_ROLE_MAP names unknown roles {unknown}; roles: {', '.join(sorted(ROLES))}")

    # -- the provider's metadata and keys ------------------------------------------------------

    async def _get_json(self, client: httpx.AsyncClient, url: str, what: str, **kwargs: Any) -> Any:
        try:
            response = await client.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise OidcError(502, f"the identity provider cannot be reached ({what}): {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise OidcError(502, f"the identity provider answered {response.status_code} to the {what} request")
        try:
            return response.json()
        except ValueError as exc:
            raise OidcError(502, f"the identity provider's {what} answer is not JSON") from exc

    async def metadata(self, client: httpx.AsyncClient) -> Metadata:
        cached = self._metadata
        if cached and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._get_json(client, url, "discovery")
        if not isinstance(doc, dict):
            raise OidcError(502, "the identity provider's discovery document is not a JSON object")
        # OpenID Connect Discovery 1.0, 4.3: the document must name exactly the configured issuer.
        if doc.get("issuer") != self.issuer:
            raise OidcError(
                502, f"the provider's discovery document names issuer {doc.get('issuer')!r}, not {self.issuer!r}"
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(name), str):
                raise OidcError(502, f"the provider's discovery document has no {name}")
        offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in ASYMMETRIC_ALGORITHMS if a in offered)
        if not algorithms:
            raise OidcError(502, f"the provider signs ID tokens only with {offered}, none of which is accepted")
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        client_auth = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        if client_auth not in methods:
            raise OidcError(502, f"the provider takes client secrets neither in basic auth nor in the body ({methods})")
        end_session = doc.get("end_session_endpoint")
        metadata = Metadata(
            issuer=self.issuer,
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            userinfo_endpoint=doc.get("userinfo_endpoint") if isinstance(doc.get("userinfo_endpoint"), str) else None,
            algorithms=algorithms,
            client_auth=client_auth,
            end_session_endpoint=end_session if isinstance(end_session, str) else None,
        )
        self._metadata = (time.monotonic(), metadata)
        return metadata

    async def _key_set(self, client: httpx.AsyncClient, metadata: Metadata, refresh: bool) -> KeySet:
        stale = time.monotonic() - self._keys_fetched >= JWKS_REFRESH_MIN_S
        if self._keys is None or (refresh and stale):
            doc = await self._get_json(client, metadata.jwks_uri, "key set")
            try:
                self._keys = KeySet.import_key_set(doc)
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise OidcError(502, "the identity provider's key set cannot be read") from exc
            self._keys_fetched = time.monotonic()
        return self._keys

    # -- the flow ------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        # Redirects are not followed: every endpoint comes from the issuer's own discovery document.
        return httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)

    async def authorization_url(self, tx: Transaction) -> str:
        async with self._http() as client:
            metadata = await self.metadata(client)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.scopes,
                "state": tx.state,
                "nonce": tx.nonce,
                "code_challenge": tx.challenge,
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if urlsplit(metadata.authorization_endpoint).query else "?"
        return f"{metadata.authorization_endpoint}{separator}{query}"

    async def end_session_url(self, id_token: str) -> str | None:
        """Where to send the browser so the provider ends its session too (None: it offers no logout).

        Without it, the next "log in with" click at a shared console would log the previous person
        back in without a password. The provider sends the browser back to the console's root,
        which must be registered there as a post-logout redirect URI.
        """
        async with self._http() as client:
            metadata = await self.metadata(client)
        if metadata.end_session_endpoint is None:
            return None
        query = urlencode(
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": self.post_logout_redirect_uri,
                "client_id": self.client_id,
            }
        )
        separator = "&" if urlsplit(metadata.end_session_endpoint).query else "?"
        return f"{metadata.end_session_endpoint}{separator}{query}"

    async def finish(self, code: str, tx: Transaction, clock: Clock) -> Verified:
        """Exchange the code and validate the ID token; the user's groups from it (else from userinfo)."""
        async with self._http() as client:
            metadata = await self.metadata(client)
            tokens = await self._exchange(client, metadata, code, tx)
            claims = await self._validate(client, metadata, tokens["id_token"], tx, clock)
            # Providers that keep the ID token small (the OIDC default) give groups and profile
            # through userinfo; the ID token's own claims always win.
            lacking = _groups_from(claims, self.groups_claim) is None or not claims.get("preferred_username")
            if lacking and metadata.userinfo_endpoint and isinstance(tokens.get("access_token"), str):
                claims = await self._userinfo(client, metadata, tokens["access_token"], claims["sub"]) | claims
        groups = _groups_from(claims, self.groups_claim) or []
        return Verified(claims=claims, groups=groups, id_token=tokens["id_token"])

    async def _exchange(self, client: httpx.AsyncClient, metadata: Metadata, code: str, tx: Transaction) -> dict:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": tx.verifier,
        }
        headers = {"Accept": "application/json"}
        secret = self._secret.get_secret_value()
        if metadata.client_auth == "client_secret_basic":
            # RFC 6749, 2.3.1: both parts form-urlencoded before base64.
            pair = f"{quote(self.client_id, safe='')}:{quote(secret, safe='')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            form |= {"client_id": self.client_id, "client_secret": secret}
        try:
            response = await client.post(metadata.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise OidcError(502, f"the identity provider cannot be reached (token): {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            error = body.get("error", "") if isinstance(body, dict) else ""
            if error == "invalid_grant":
                raise OidcError(
                    400, "the identity provider refused the authorization code (used or expired): log in again"
                )
            raise OidcError(
                502, f"the identity provider's token endpoint answered {response.status_code} {error}".strip()
            )
        if not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            raise OidcError(502, "the identity provider's token answer has no ID token (is the openid scope asked?)")
        return body

    async def _validate(
        self, client: httpx.AsyncClient, metadata: Metadata, id_token: str, tx: Transaction, clock: Clock
    ) -> dict[str, Any]:
        try:
            token = jwt.decode(id_token, await self._key_set(client, metadata, refresh=False), metadata.algorithms)
        except InvalidKeyIdError:
            # A key id not seen yet: the provider may have rotated its keys since they were fetched.
            try:
                token = jwt.decode(id_token, await self._key_set(client, metadata, refresh=True), metadata.algorithms)
            except InvalidKeyIdError as exc:
                raise OidcError(
                    401, "the ID token is signed with a key the identity provider does not publish"
                ) from exc
            except BadSignatureError as exc:
                raise OidcError(401, "the ID token's signature does not verify with the provider's keys") from exc
            except JoseError as exc:
                raise OidcError(401, f"the ID token cannot be read: {exc}") from exc
        except BadSignatureError as exc:
            raise OidcError(401, "the ID token's signature does not verify with the provider's keys") from exc
        except JoseError as exc:
            raise OidcError(401, f"the ID token cannot be read: {exc}") from exc
        claims = token.claims
        # The checks of OpenID Connect Core 1.0, 3.1.3.7, each with its own message for the audit trail.
        if claims.get("iss") != self.issuer:
            raise OidcError(401, f"the ID token was issued by {claims.get('iss')!r}, not by {self.issuer!r}")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if self.client_id not in audiences:
            raise OidcError(401, f"the ID token is meant for {audience!r}, not for this gateway ({self.client_id!r})")
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != self.client_id:
            raise OidcError(401, f"the ID token was issued to another client (azp {claims.get('azp')!r})")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), tx.nonce.encode()):
            raise OidcError(401, "the ID token does not answer this login (nonce): log in again")
        now = int(clock.now().timestamp())
        registry = jwt.JWTClaimsRegistry(
            now=now, leeway=LEEWAY_S, sub={"essential": True}, exp={"essential": True}, iat={"essential": True}
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise OidcError(401, "the ID token has expired") from exc
        except JoseError as exc:
            raise OidcError(401, f"the ID token is not valid: {exc}") from exc
        return dict(claims)

    async def _userinfo(
        self, client: httpx.AsyncClient, metadata: Metadata, access_token: str, subject: str
    ) -> dict[str, Any]:
        assert metadata.userinfo_endpoint is not None
        info = await self._get_json(
            client, metadata.userinfo_endpoint, "userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )
        # OpenID Connect Core 1.0, 5.3.2: userinfo about anyone but the ID token's subject is ignored.
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise OidcError(502, "the provider's userinfo answer is about another user than the ID token")
        # Only what describes the user: the ID token's protocol claims (iss, aud, nonce...) stay its own.
        return {k: v for k, v in info.items() if k not in ("iss", "aud", "exp", "iat", "nonce", "amr", "acr", "azp")}

    def grant_for(self, groups: list[str]) -> Grant:
        """Role and camera groups from the user's provider groups: the first group of the map they are
        in gives the role; camera groups of every matching entry with that role add up."""
        matched = [name for name in self.role_map if name in groups]
        if not matched:
            shown = ", ".join(sorted(groups)[:20]) or "none"
            raise OidcError(
                403,
                f"none of your groups at the identity provider ({shown}) gives access to this platform: ask "
                "your administrator to add you to one of its groups",
            )
        role = self.role_map[matched[0]].role
        same_role = [name for name in matched if self.role_map[name].role == role]
        camera_groups = sorted({g for name in same_role for g in self.role_map[name].camera_groups})
        return Grant(role=role, camera_groups=camera_groups, groups=same_role)
