// Accounts and habilitations (administrators): nominative accounts, role, camera groups, expiry,
// the prefecture's validation; revoke sessions, reset a lost second factor or a forgotten password.
import { api, enc } from "./api.js";
import { h, clear, dialog } from "./dom.js";
import { t } from "./i18n.js";
import { fmt } from "./time.js";
import { buildForm } from "./forms.js";
import { screenHeader, table, errorLine, toast } from "./ui.js";

const ROLES = ["operator", "supervisor", "manager", "maintenance", "clerk", "auditor", "admin", "police_nationale", "dpo"];
const GROUP = "\\*|[a-z0-9][a-z0-9_-]{0,63}";

function habilitationFields(user = {}) {
  return [
    { name: "display_name", label: t("users.displayName"), required: true, maxLength: 128, value: user.display_name },
    { name: "role", label: t("users.role"), type: "select", options: ROLES.map((r) => [r, t(`role.${r}`)]), value: user.role || "operator" },
    { name: "camera_groups", label: t("users.groups"), type: "list", value: user.camera_groups || [], itemPattern: GROUP, itemMessage: t("users.groupsInvalid"), hint: t("users.groupsHint") },
    { name: "expires", label: t("users.expires"), type: "datetime", value: user.expires },
    { name: "prefecture_ref", label: t("users.prefRef"), maxLength: 128, value: user.prefecture_ref },
    { name: "prefecture_validated", label: t("users.prefValidated"), type: "datetime", value: user.prefecture_validated },
    { name: "playback_days", label: t("users.playbackDays"), type: "number", min: 1, max: 30, value: user.playback_days ?? "" },
    { name: "ptz_priority", label: t("users.ptzPriority"), type: "number", min: 0, max: 100, value: user.ptz_priority ?? "" },
  ];
}

function clean(values) {
  for (const key of ["expires", "prefecture_validated", "prefecture_ref"]) if (!values[key]) values[key] = null;
  return values;
}

export async function mount(root) {
  const error = errorLine();
  const list = h("div", { id: "users-table" });
  async function refresh() {
    try {
      const users = await api("/api/v1/users");
      clear(list, table([
        { label: t("users.username"), key: "username" },
        { label: t("users.displayName"), key: "display_name" },
        { label: t("users.role"), render: (u) => t(`role.${u.role}`) },
        { label: t("users.groups"), render: (u) => u.camera_groups.join(", ") },
        { label: t("users.expires"), render: (u) => fmt(u.expires, "date") },
        { label: t("users.prefValidated"), render: (u) => u.prefecture_validated ? `${fmt(u.prefecture_validated, "date")} (${u.prefecture_ref || "—"})` : t("users.notValidated") },
        { label: t("users.state"), render: (u) => [u.active ? t("users.active") : t("users.inactive"), u.locked ? t("users.locked") : "", u.must_change_password ? t("users.mustChange") : "", u.totp_enrolled ? "TOTP" : ""].filter(Boolean).join(" · ") },
        { label: "", render: (u) => h("span", { class: "row-actions" },
          h("button", { type: "button", class: "small", text: t("common.edit"), onclick: () => edit(u) }),
          h("button", { type: "button", class: "small", text: u.active ? t("users.deactivate") : t("users.activate"), onclick: () => patch(u, { active: !u.active }) }),
          h("button", { type: "button", class: "small", text: t("users.revokeSessions"), onclick: () => action(u, "revoke-sessions") }),
          h("button", { type: "button", class: "small", text: t("users.resetTotp"), onclick: () => confirm(t("users.confirmResetTotp", { user: u.username })) && action(u, "reset-totp") }),
          h("button", { type: "button", class: "small", text: t("users.resetPassword"), onclick: () => confirm(t("users.confirmResetPassword", { user: u.username })) && resetPassword(u) })) },
      ], users));
      error.show("");
    } catch (err) { error.show(err.message); }
  }
  async function patch(user, body) {
    try { await api(`/api/v1/users/${enc(user.username)}`, { method: "PATCH", body }); toast(t("common.saved")); refresh(); } catch (err) { toast(err.message, "error"); }
  }
  async function action(user, what) {
    try { await api(`/api/v1/users/${enc(user.username)}/${what}`, { method: "POST", body: {} }); toast(t("common.done")); refresh(); } catch (err) { toast(err.message, "error"); }
  }
  // The single-use password is shown once, here, to be handed over in person; the next login replaces it.
  async function resetPassword(user) {
    let reset;
    try { reset = await api(`/api/v1/users/${enc(user.username)}/reset-password`, { method: "POST", body: {} }); } catch (err) { toast(err.message, "error"); return; }
    refresh();
    await dialog(t("users.resetPassword"), (ok) => h("div", {}, h("p", { text: t("users.oneTimePassword", { user: user.username }) }),
      h("code", { class: "secret", id: "one-time-password", text: reset.one_time_password }),
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: t("common.close"), onclick: () => ok(true) }))));
  }
  function edit(user) {
    dialog(t("users.edit", { user: user.username }), (close) => buildForm(habilitationFields(user), {
      id: "user-edit", onCancel: () => close(null),
      onSubmit: async (values) => { await api(`/api/v1/users/${enc(user.username)}`, { method: "PATCH", body: clean(values) }); close(true); toast(t("common.saved")); refresh(); },
    }).form);
  }
  function create() {
    dialog(t("users.create"), (close) => buildForm([
      { name: "username", label: t("users.username"), required: true, pattern: "[a-z0-9][a-z0-9._-]{1,63}", maxLength: 64, hint: t("users.usernameHint") },
      { name: "password", label: t("users.password"), type: "password", required: true, maxLength: 256, autocomplete: "new-password", check: [(v) => v.length >= 12, t("users.passwordShort")] },
      ...habilitationFields(),
    ], {
      id: "user-create", onCancel: () => close(null),
      onSubmit: async (values) => { await api("/api/v1/users", { method: "POST", body: clean(values) }); close(true); toast(t("common.saved")); refresh(); },
    }).form);
  }
  clear(root, screenHeader(t("nav.users"), h("button", { type: "button", class: "primary", id: "user-new", text: t("users.create"), onclick: create })), error, list);
  refresh();
}
