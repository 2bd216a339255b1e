// Every string a user reads goes through t(): French by default, English on request.
import fr from "./lang/fr.js";
import en from "./lang/en.js";

export const LANGS = { fr, en };
const KEY = "csu.lang";
let current = LANGS[localStorage.getItem(KEY)] ? localStorage.getItem(KEY) : "fr";
document.documentElement.lang = current;

export function lang() { return current; }
export function locale() { return current === "fr" ? "fr-FR" : "en-GB"; }

export function setLang(code) {
  if (!LANGS[code]) return;
  current = code;
  localStorage.setItem(KEY, code);
  document.documentElement.lang = code;
  window.dispatchEvent(new CustomEvent("csu:lang"));
}

export function t(key, params = {}) {
  const text = LANGS[current][key] ?? LANGS.fr[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

// Static markup: elements carrying data-i18n get their text (or placeholder / title) translated.
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}
