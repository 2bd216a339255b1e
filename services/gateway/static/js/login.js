// Login: password, then the TOTP code; at first login the enrolment QR code and its secret; after an
// admin's password reset, the new password replacing the single-use one. When
// the gateway has an OpenID Connect provider (GET /api/v1/auth/methods), a plain link to it too:
// a navigation, not a script or a form, so the page's CSP (form-action 'self') is untouched.
import { api } from "./api.js";
import { h, clear } from "./dom.js";
import { t, setLang, lang, LANGS } from "./i18n.js";
import { qrSvg } from "./qr.js";
import { errorLine, validate } from "./ui.js";

function secretOf(uri) {
  try { return new URL(uri).searchParams.get("secret") || ""; } catch { return ""; }
}

export function showLogin(root, onDone) {
  const username = h("input", { name: "username", id: "login-username", autocomplete: "username", required: true, maxLength: 64 });
  const password = h("input", { name: "password", id: "login-password", type: "password", autocomplete: "current-password", required: true, maxLength: 256 });
  const totp = h("input", { name: "totp", id: "login-totp", inputMode: "numeric", autocomplete: "one-time-code", maxLength: 6, pattern: "[0-9]{6}" });
  const totpField = h("label", { class: "field", hidden: true }, h("span", { class: "field-label", text: t("login.totp") }), totp);
  const newPassword = h("input", { name: "new_password", id: "login-new-password", type: "password", autocomplete: "new-password", maxLength: 256 });
  const newField = h("label", { class: "field", hidden: true },
    h("span", { class: "field-label", text: t("login.newPassword") }), newPassword,
    h("span", { class: "muted", id: "login-must-change", text: t("login.mustChange") }));
  const enrol = h("div", { class: "enrol", id: "login-enrol", hidden: true });
  const error = errorLine();
  error.id = "login-error";
  const submit = h("button", { type: "submit", class: "primary", id: "login-submit", text: t("login.submit") });
  const form = h("form", { class: "login-form", novalidate: true },
    h("label", { class: "field" }, h("span", { class: "field-label", text: t("login.username") }), username),
    h("label", { class: "field" }, h("span", { class: "field-label", text: t("login.password") }), password),
    newField, enrol, totpField, submit, error);
  const langs = h("select", { class: "lang", "aria-label": t("session.language"), onchange: (e) => { setLang(e.target.value); showLogin(root, onDone); } },
    Object.keys(LANGS).map((code) => h("option", { value: code, selected: code === lang(), text: code.toUpperCase() })));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const needTotp = !totpField.hidden;
    const needNew = !newField.hidden;
    totp.required = needTotp;
    newPassword.required = needNew;
    const ok = validate(form, [
      [username, (v) => v.trim().length > 0, t("login.usernameMissing")],
      [password, (v) => v.length > 0, t("login.passwordMissing")],
      [newPassword, (v) => !needNew || v.length > 0, t("login.newPasswordMissing")],
      [totp, (v) => !needTotp || /^[0-9]{6}$/.test(v), t("login.totpFormat")],
    ]);
    if (!ok) return;
    const body = { username: username.value.trim(), password: password.value };
    if (needTotp) body.totp = totp.value;
    if (needNew) body.new_password = newPassword.value;
    submit.disabled = true;
    error.show("");
    try {
      const answer = await api("/api/v1/auth/login", { method: "POST", body, quiet401: true });
      if (answer.status === "ok") {
        // Said once the console is open (app.js): failed logins since the last one, a lock included.
        if (answer.failed_attempts > 0) sessionStorage.setItem("csu.login.failed", String(answer.failed_attempts));
        onDone();
        return;
      }
      if (answer.status === "password_change_required") {
        newField.hidden = false;
        username.readOnly = password.readOnly = true;
        newPassword.focus();
        return;
      }
      if (answer.status === "totp_enrolment") {
        const secret = secretOf(answer.otpauth_uri);
        clear(enrol,
          h("p", { text: t("login.enrolIntro") }),
          h("div", { class: "qr-box", "aria-label": t("login.qr") }, qrSvg(answer.otpauth_uri)),
          h("p", {}, t("login.secret"), " ", h("code", { id: "totp-secret", class: "secret", text: secret.replace(/(.{4})/g, "$1 ").trim() })));
        enrol.hidden = false;
      }
      totpField.hidden = false;
      username.readOnly = password.readOnly = newPassword.readOnly = true;
      totp.value = "";
      totp.focus();
    } catch (err) {
      error.show(err.message);
      if (needTotp) { totp.value = ""; totp.focus(); }
    } finally {
      submit.disabled = false;
    }
  });
  const sso = h("div", { class: "login-form", id: "login-sso", hidden: true });
  // Left by the logout of a single sign-on session the provider could not end (app.js).
  const leftOpen = sessionStorage.getItem("csu.logout.notice");
  const notice = leftOpen
    ? h("p", { class: "error", id: "logout-notice", role: "alert", title: leftOpen, text: t("login.providerSessionOpen") })
    : null;
  clear(root, h("div", { class: "login-card" },
    h("div", { class: "login-head" }, h("h1", { text: t("app.name") }), langs),
    notice, h("p", { class: "muted", text: t("login.intro") }), form, sso));
  root.hidden = false;
  username.focus();
  showSingleSignOn(sso);
}

async function showSingleSignOn(box) {
  let methods;
  try {
    methods = await api("/api/v1/auth/methods", { quiet401: true });
  } catch {
    return; // the password form works on its own
  }
  if (!methods || !methods.oidc) return;
  clear(box,
    h("p", { class: "muted", text: t("login.or") }),
    h("a", { class: "button", id: "login-oidc", href: methods.oidc.login_url, text: t("login.oidc", { name: methods.oidc.name }) }),
    h("p", { class: "muted", text: t("login.oidcHint", { name: methods.oidc.name }) }));
  box.hidden = false;
}
