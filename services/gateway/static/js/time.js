// Times: the API speaks UTC ISO 8601; people read and type Europe/Paris.
import { locale } from "./i18n.js";

export const PARIS = "Europe/Paris";

function asDate(value) {
  if (value instanceof Date) return value;
  if (typeof value === "number") return new Date(value);
  return new Date(value);
}

const STYLES = {
  datetime: { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" },
  minute: { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" },
  date: { year: "numeric", month: "2-digit", day: "2-digit" },
  time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
  hm: { hour: "2-digit", minute: "2-digit" },
  daymonth: { day: "2-digit", month: "2-digit" },
  daytime: { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" },
};

export function fmt(value, style = "datetime") {
  if (value === null || value === undefined || value === "") return "—";
  const date = asDate(value);
  if (Number.isNaN(date.getTime())) return "—";
  return new Intl.DateTimeFormat(locale(), { timeZone: PARIS, hourCycle: "h23", ...STYLES[style] }).format(date);
}

// Wall-clock parts of an instant in Paris.
export function parisParts(value) {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: PARIS, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(asDate(value));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return { year: get("year"), month: get("month"), day: get("day"), hour: get("hour"), minute: get("minute"), second: get("second") };
}

function offsetMs(ms) {
  const p = parisParts(ms);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}

// "2026-11-25T21:10[:05]" typed in Paris -> Date (UTC instant); null when malformed.
export function parisInputToDate(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text || "");
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  let guess = wall - offsetMs(wall);
  guess = wall - offsetMs(guess);
  return new Date(guess);
}

// Date -> "YYYY-MM-DDTHH:MM:SS" in Paris, the value of a datetime-local input.
export function dateToParisInput(value) {
  const p = parisParts(value);
  const two = (n) => String(n).padStart(2, "0");
  return `${p.year}-${two(p.month)}-${two(p.day)}T${two(p.hour)}:${two(p.minute)}:${two(p.second)}`;
}

export function isoZ(value) { return asDate(value).toISOString().replace(/\.\d{3}Z$/, "Z"); }

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}`;
  return `${Math.floor(s / 86400)} j ${Math.floor((s % 86400) / 3600)} h`;
}
