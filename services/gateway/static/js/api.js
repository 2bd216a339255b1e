// The gateway's REST API through the session cookie. Errors become plain sentences: the API's own
// `detail` when it gave one, never a stack trace or raw JSON.
import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function describe(status, body) {
  const detail = body && typeof body === "object" ? body.detail : null;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail)) {
    // FastAPI validation errors: "field: what is wrong", one per line.
    return detail.map((e) => {
      const where = (e.loc || []).filter((p) => p !== "body" && p !== "query" && p !== "path").join(".");
      return where ? `${where}: ${e.msg}` : e.msg;
    }).join("\n");
  }
  if (detail && typeof detail === "object") {
    const lines = [detail.message || ""];
    for (const e of detail.errors || []) lines.push(e.line ? `${t("error.line")} ${e.line}: ${e.message}` : e.message);
    return lines.filter(Boolean).join("\n");
  }
  if (status === 401) return t("error.session");
  if (status === 403) return t("error.forbidden");
  if (status === 404) return t("error.notFound");
  if (status === 413) return t("error.tooLarge");
  if (status >= 500) return t("error.server", { status });
  return t("error.http", { status });
}

export async function api(path, { method = "GET", body, headers = {}, raw = false, quiet401 = false } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    if (body instanceof FormData || body instanceof Blob || typeof body === "string") init.body = body;
    else { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, t("error.network"), null);
  }
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON: a proxy's page, say nothing of it */ }
    if (response.status === 401 && !quiet401) checkSession();
    throw new ApiError(response.status, describe(response.status, data), data);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

// A 401 may be a refused re-authentication (a manager's wrong password) rather than an ended
// session: only a session the server no longer knows sends the console back to the login form.
async function checkSession() {
  try {
    const response = await fetch("/api/v1/console/me", { credentials: "same-origin" });
    if (response.status === 401) window.dispatchEvent(new CustomEvent("csu:unauthenticated"));
  } catch { /* offline: the next call tells */ }
}

export const get = (path) => api(path);
export const post = (path, body) => api(path, { method: "POST", body: body ?? {} });
export const put = (path, body) => api(path, { method: "PUT", body });
export const patch = (path, body) => api(path, { method: "PATCH", body });
export const del = (path) => api(path, { method: "DELETE" });

export function qs(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") search.set(k, v);
  const text = search.toString();
  return text ? `?${text}` : "";
}

export const enc = encodeURIComponent;
