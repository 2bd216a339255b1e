// A real OpenID Connect provider for the gateway's OIDC login tests: panva's oidc-provider (the
// certified implementation) with the accounts, clients and settings of one test.
//
//     node provider.mjs CONFIG.json
//
// CONFIG.json: {"issuer": "http://127.0.0.1:PORT", "port": PORT,
//               "clients": [{"client_id", "client_secret", "redirect_uris": [...], "post_logout_redirect_uris": [...]}],
//               "accounts": {"<login>": {"sub", "password", "name", "email", "groups": [...], "tamper": {...}}},
//               "groups_in_id_token": true, "logout": true}
//
// Its own login and consent pages are plain HTML forms, so a test drives them with an HTTP client
// or a browser as a person would. Logins record amr ["pwd", "otp"] and an acr, as a city IdP
// enforcing MFA would. "groups_in_id_token": false keeps the groups in the userinfo answer only (the
// OIDC default), true puts them in the ID token too (as Keycloak's group mapper does). "logout":
// false leaves out RP-initiated logout (no end_session_endpoint), as some providers do.
//
// "tamper" (test accounts only) rewrites the ID token the token endpoint returns for that account,
// still signed with this provider's own key unless told otherwise — what a mix-up attack, a
// misconfigured or malicious issuer would hand the gateway: {"iss": "..."}, {"aud": "..."},
// {"nonce": "..."}, {"exp_offset_s": -600}, {"other_key": true} (same kid, another key).
// It prints "listening <issuer>" once it accepts connections.

import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";

import { exportJWK, generateKeyPair, SignJWT, decodeJwt, decodeProtectedHeader } from "jose";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const accounts = config.accounts;
const bySub = new Map(Object.entries(accounts).map(([login, a]) => [a.sub, { login, ...a }]));
const ACR = "urn:csu:test:mfa";
const AMR = ["pwd", "otp"];

async function signingKey(kid) {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" } };
}

const kid = `k-${randomBytes(4).toString("hex")}`;
const key = await signingKey(kid);
const otherKey = await signingKey(kid);

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris || [],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  })),
  jwks: { keys: [key.jwk] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  claims: {
    // acr and amr with "openid": an IdP enforcing MFA tells every client how the user logged in.
    sid: null,
    iss: null,
    openid: ["sub", "acr", "amr", "auth_time"],
    profile: ["name", "preferred_username"],
    email: ["email"],
    groups: ["groups"],
  },
  scopes: ["openid", "profile", "email", "groups"],
  acrValues: [ACR],
  conformIdTokenClaims: !config.groups_in_id_token,
  // The gateway must send PKCE even though it is a confidential client.
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    // RP-initiated logout, its pages plain forms like the others (a person confirms the sign-out,
    // as most providers ask).
    rpInitiatedLogout: {
      enabled: config.logout !== false,
      logoutSource: async (ctx, form) => {
        ctx.type = "html";
        ctx.body = page("Test IdP: sign out", `${form}<button type="submit" form="op.logoutForm" name="logout" ` +
          `value="yes" id="idp-logout">Sign out</button>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.type = "html";
        ctx.body = page("Test IdP: signed out", "");
      },
    },
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    const account = bySub.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: account.name,
          preferred_username: account.login,
          email: account.email,
          groups: account.groups,
        };
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = "html";
    ctx.body = `<!doctype html><title>error</title><h1>${escape(out.error)}</h1><p>${escape(out.error_description || "")}</p>`;
  },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head><body>` +
    `<h1>${escape(title)}</h1>${body}</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

function loginPage(uid, error) {
  return page("Test IdP: sign in",
    (error ? `<p class="error" id="idp-error">${escape(error)}</p>` : "") +
    `<form method="post" action="/interaction/${escape(uid)}/login">` +
    `<input name="login" id="idp-login" required autofocus>` +
    `<input name="password" id="idp-password" type="password" required>` +
    `<button type="submit" id="idp-submit">Sign in</button></form>`);
}

function consentPage(uid, clientId) {
  return page("Test IdP: authorise",
    `<p>Share your identity and groups with ${escape(clientId)}?</p>` +
    `<form method="post" action="/interaction/${escape(uid)}/confirm">` +
    `<button type="submit" id="idp-consent">Continue</button></form>`);
}

// The provider's interaction pages: login (checks the password), then consent.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(\/login|\/confirm)?$/.exec(ctx.path);
  if (!match) return next();
  const [, uid, step] = match;
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, "interaction mismatch");
  ctx.set("Cache-Control", "no-store");
  if (ctx.method === "GET" && !step) {
    ctx.type = "html";
    ctx.body = details.prompt.name === "login" ? loginPage(uid) : consentPage(uid, details.params.client_id);
    return;
  }
  if (ctx.method !== "POST") ctx.throw(405);
  if (step === "/login") {
    const form = await readForm(ctx.req);
    const account = accounts[form.get("login")];
    if (!account || account.password !== form.get("password")) {
      ctx.status = 401;
      ctx.type = "html";
      ctx.body = loginPage(uid, "Wrong login or password.");
      return;
    }
    const result = { login: { accountId: account.sub, acr: ACR, amr: AMR } };
    ctx.status = 303;
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
    return;
  }
  // Consent: grant what was asked (as the provider's development pages do).
  const { prompt: { details: missing }, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const grantId = await grant.save();
  ctx.status = 303;
  ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }));
});

// Test accounts with a "tamper" rule get a rewritten ID token from the token endpoint.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== "/token" || ctx.status !== 200 || !ctx.body?.id_token) return;
  const claims = decodeJwt(ctx.body.id_token);
  const tamper = bySub.get(claims.sub)?.tamper;
  if (!tamper) return;
  const header = decodeProtectedHeader(ctx.body.id_token);
  if (tamper.iss) claims.iss = tamper.iss;
  if (tamper.aud) claims.aud = tamper.aud;
  if (tamper.nonce) claims.nonce = tamper.nonce;
  if (tamper.exp_offset_s) {
    claims.exp = Math.floor(Date.now() / 1000) + tamper.exp_offset_s;
    claims.iat = claims.exp - 3600;
  }
  const signer = tamper.other_key ? otherKey : key;
  ctx.body = { ...ctx.body, id_token: await new SignJWT(claims).setProtectedHeader(header).sign(signer.privateKey) };
});

const server = provider.listen(config.port, "127.0.0.1", () => {
  console.log(`listening ${config.issuer}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
