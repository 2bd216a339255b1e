// The console's shell: who is signed in, the menu their role allows, the screens, notifications.
import { api, ApiError } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t, translatePage, setLang, lang, LANGS } from "./i18n.js";
import { fmt } from "./time.js";
import { showLogin } from "./login.js";
import { buildForm } from "./forms.js";
import { toast } from "./ui.js";
import { session } from "./session.js";
import { SCREENS } from "./screens.js";
import { startNotifications, stopNotifications } from "./notify.js";

let cleanup = null;
let currentKey = "";

function allowedScreens() {
  return SCREENS.filter((s) => s.allowed(session.me));
}

function renderNav() {
  const nav = document.getElementById("nav");
  const here = (location.hash.slice(2) || "").split("/")[0];
  clear(nav, allowedScreens().filter((s) => !s.hidden).map((s) =>
    h("a", { href: `#/${s.id}`, class: s.id === here ? "active" : null, id: `nav-${s.id}`, text: t(s.label) })));
}

function renderSession() {
  const me = session.me;
  const hab = me.habilitation;
  let habText = t("session.noExpiry");
  let warn = false;
  if (hab.problem) { habText = hab.problem; warn = true; }
  else if (hab.expires) {
    const days = (new Date(hab.expires) - Date.now()) / 86_400_000;
    habText = t("session.habilitationUntil", { date: fmt(hab.expires, "date") });
    warn = days < 30;
  }
  const langs = h("select", { class: "lang", "aria-label": t("session.language"), onchange: (e) => setLang(e.target.value) },
    Object.keys(LANGS).map((code) => h("option", { value: code, selected: code === lang(), text: code.toUpperCase() })));
  clear(document.getElementById("session"),
    h("span", { class: "who", id: "session-user" }, h("strong", { text: me.display_name }), ` · ${t(`role.${me.role}`)}`),
    h("span", { class: ["habilitation", warn && "warn"], id: "session-habilitation", text: habText }),
    langs,
    me.partner ? null : h("button", { type: "button", id: "change-password", class: "link", text: t("session.password"), onclick: changePassword }),
    h("button", { type: "button", id: "logout", class: "link", text: t("session.logout"), onclick: logout }));
}

// One's own password: the current one is checked like a login; the other sessions end.
function changePassword() {
  dialog(t("session.passwordTitle"), (close) => {
    const built = buildForm([
      { name: "current_password", label: t("session.currentPassword"), type: "password", required: true, maxLength: 256, autocomplete: "current-password" },
      { name: "new_password", label: t("session.newPassword"), type: "password", required: true, maxLength: 256, autocomplete: "new-password", hint: t("session.passwordHint") },
    ], {
      id: "password-change", onCancel: () => close(null),
      onSubmit: async () => {
        // As typed: a password's spaces are part of it (the form's values are trimmed).
        const body = { current_password: built.inputs.current_password.value, new_password: built.inputs.new_password.value };
        await api("/api/v1/auth/password", { method: "POST", body, quiet401: true });
        close(true);
        toast(t("session.passwordChanged"));
      },
    });
    return built.form;
  });
}

async function logout() {
  let out = null;
  try { out = await api("/api/v1/auth/logout", { method: "POST", quiet401: true }); } catch { /* gone already */ }
  stopNotifications();
  window.removeEventListener("hashchange", route);
  if (cleanup) { try { cleanup(); } catch { /* leaving anyway */ } cleanup = null; }
  // A notice left by an earlier logout in this tab must not outlive it.
  sessionStorage.removeItem("csu.logout.notice");
  // A single sign-on session ends at the identity provider too, which sends the browser back here:
  // otherwise the next person at this console would be let in as this one without a password.
  if (out && out.end_session_url) { location.replace(out.end_session_url); return; }
  if (out && out.notice) sessionStorage.setItem("csu.logout.notice", out.notice);
  location.replace("/");
}

async function route() {
  const [key, ...rest] = (location.hash.slice(2) || "").split("/");
  const screens = allowedScreens();
  const screen = screens.find((s) => s.id === key) || screens.find((s) => !s.hidden);
  if (cleanup) { try { cleanup(); } catch (err) { console.error(err); } cleanup = null; }
  const main = document.getElementById("main");
  clear(main);
  document.getElementById("app").classList.toggle("follower", Boolean(screen?.follower));
  renderNav();
  if (!screen) {
    main.append(h("div", { class: "panel" }, h("p", { text: t("app.nothingForRole") })));
    return;
  }
  if (screen.id !== key) { history.replaceState(null, "", `#/${screen.id}`); }
  currentKey = screen.id;
  document.title = `CSU — ${t(screen.label)}`;
  try {
    const module = await screen.load();
    if (currentKey !== screen.id) return;
    cleanup = await module.mount(main, { params: rest.map(decodeURIComponent), me: session.me }) || null;
  } catch (err) {
    console.error(err);
    main.append(h("p", { class: "error", role: "alert", text: err instanceof ApiError ? err.message : t("error.unknown") }));
  }
}

async function boot() {
  translatePage();
  document.getElementById("boot").hidden = true;
  try {
    session.me = await api("/api/v1/console/me", { quiet401: true });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      document.getElementById("app").hidden = true;
      showLogin(document.getElementById("login"), () => location.reload());
      return;
    }
    clear(document.getElementById("login"), h("p", { class: "error", role: "alert", text: err.message }));
    document.getElementById("login").hidden = false;
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("app").hidden = false;
  renderSession();
  const failed = sessionStorage.getItem("csu.login.failed");
  if (failed) {
    sessionStorage.removeItem("csu.login.failed");
    toast(t("session.failedAttempts", { count: failed }), "error", 60_000);
  }
  window.addEventListener("hashchange", route);
  window.addEventListener("csu:lang", () => { translatePage(); renderSession(); route(); });
  window.addEventListener("csu:unauthenticated", onExpired);
  if (!location.hash.startsWith("#/screen2")) startNotifications(session.me);
  await route();
  // The habilitation can be changed or revoked while the console is open: re-read it now and then.
  setInterval(async () => {
    try { session.me = await api("/api/v1/console/me", { quiet401: true }); renderSession(); } catch { /* onExpired handles 401 */ }
  }, 60_000);
}

let expiredShown = false;
function onExpired() {
  if (expiredShown) return;
  expiredShown = true;
  stopNotifications();
  toast(t("error.session"), "error", 60_000);
  if (cleanup) { try { cleanup(); } catch { /* leaving anyway */ } cleanup = null; }
  document.getElementById("app").hidden = true;
  showLogin(document.getElementById("login"), () => location.reload());
}

boot();
