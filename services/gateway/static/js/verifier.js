// The export package verifier, in the browser: the same checks as csu-verify (the standalone
// verifier shipped in every package) on the zip just downloaded, before it is handed over.
//   - manifest.json is signed (manifest.sig, Ed25519) by the key whose fingerprint the CSU publishes;
//   - every file listed has exactly its SHA-256 and size; none missing, none added;
//   - the zip is the very package built (its SHA-256), which the handover records.
import { t } from "./i18n.js";

const FORMAT = "csu-export/1";
const MANIFEST = "manifest.json";
const SIGNATURE = "manifest.sig";
const SPKI_PREFIX = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
export const sha256 = async (bytes) => hex(await crypto.subtle.digest("SHA-256", bytes));

function readZip(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error(t("verify.notZip"));
  let count = view.getUint16(eocd + 10, true);
  let offset = view.getUint32(eocd + 16, true);
  if (offset === 0xffffffff || count === 0xffff) {
    // ZIP64: the end-of-central-directory locator points at the ZIP64 record.
    const locator = eocd - 20;
    const record = Number(view.getBigUint64(locator + 8, true));
    count = Number(view.getBigUint64(record + 32, true));
    offset = Number(view.getBigUint64(record + 48, true));
  }
  const entries = [];
  for (let n = 0; n < count; n++) {
    if (view.getUint32(offset, true) !== 0x02014b50) throw new Error(t("verify.notZip"));
    const flags = view.getUint16(offset + 8, true);
    const method = view.getUint16(offset + 10, true);
    let compressed = view.getUint32(offset + 20, true);
    let size = view.getUint32(offset + 24, true);
    const nameLen = view.getUint16(offset + 28, true);
    const extraLen = view.getUint16(offset + 30, true);
    const commentLen = view.getUint16(offset + 32, true);
    let local = view.getUint32(offset + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(offset + 46, offset + 46 + nameLen));
    let extra = offset + 46 + nameLen;
    const extraEnd = extra + extraLen;
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const len = view.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let p = extra + 4;
        if (size === 0xffffffff) { size = Number(view.getBigUint64(p, true)); p += 8; }
        if (compressed === 0xffffffff) { compressed = Number(view.getBigUint64(p, true)); p += 8; }
        if (local === 0xffffffff) { local = Number(view.getBigUint64(p, true)); }
      }
      extra += 4 + len;
    }
    if (!name.endsWith("/")) entries.push({ name, flags, method, compressed, size, local });
    offset = extraEnd + commentLen;
  }
  return { view, entries };
}

async function inflate(bytes, entry, view) {
  const start = entry.local + 30 + view.getUint16(entry.local + 26, true) + view.getUint16(entry.local + 28, true);
  const data = bytes.subarray(start, start + entry.compressed);
  if (entry.method === 0) return data;
  if (entry.method !== 8) throw new Error(t("verify.method", { name: entry.name }));
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function keyFromPem(text) {
  const lines = text.trim().split(/\r?\n/).map((l) => l.trim());
  if (lines[0] !== "-----BEGIN PUBLIC KEY-----" || lines[lines.length - 1] !== "-----END PUBLIC KEY-----") throw new Error(t("verify.badKey"));
  const der = Uint8Array.from(atob(lines.slice(1, -1).join("")), (c) => c.charCodeAt(0));
  if (der.length !== 44 || SPKI_PREFIX.some((b, i) => der[i] !== b)) throw new Error(t("verify.badKey"));
  return der;
}

const normaliseFingerprint = (value) => (value || "").toLowerCase().replace(/^sha256:/, "").replace(/[\s:-]/g, "");

export async function verifyPackage(bytes, { expectedSha256 = "", publishedFingerprint = "" } = {}) {
  const report = { ok: false, problems: [], notes: [], filesChecked: 0, fingerprint: "", zipSha256: await sha256(bytes), manifest: null };
  if (expectedSha256 && report.zipSha256 !== expectedSha256.toLowerCase()) report.problems.push(t("verify.zipHash", { got: report.zipSha256 }));
  const { view, entries } = readZip(bytes);
  if (entries.some((e) => e.flags & 1)) throw new Error(t("verify.encrypted"));
  const tops = new Set(entries.map((e) => e.name.split("/")[0]));
  const prefix = tops.size === 1 && entries.every((e) => e.name.includes("/")) ? `${[...tops][0]}/` : "";
  const files = new Map(entries.map((e) => [e.name.slice(prefix.length), e]));
  if (!files.has(MANIFEST)) throw new Error(t("verify.noManifest"));
  const manifestBytes = await inflate(bytes, files.get(MANIFEST), view);
  let manifest;
  try { manifest = JSON.parse(new TextDecoder().decode(manifestBytes)); } catch { report.problems.push(t("verify.manifestJson")); return report; }
  if (!manifest || manifest.format !== FORMAT) { report.problems.push(t("verify.manifestFormat")); return report; }
  report.manifest = manifest;
  const keyFile = manifest.signing_key?.file || "public-key.pem";
  let der = null;
  if (!files.has(keyFile)) report.problems.push(t("verify.keyMissing", { file: keyFile }));
  else {
    try { der = keyFromPem(new TextDecoder().decode(await inflate(bytes, files.get(keyFile), view))); } catch (err) { report.problems.push(err.message); }
  }
  let signatureOk = false;
  if (der) {
    const digest = await sha256(der.subarray(SPKI_PREFIX.length));
    report.fingerprint = digest.match(/.{4}/g).join(" ");
    if (publishedFingerprint && normaliseFingerprint(publishedFingerprint) !== digest) report.problems.push(t("verify.fingerprintMismatch"));
    if (!files.has(SIGNATURE)) report.problems.push(t("verify.signatureMissing"));
    else {
      const text = new TextDecoder().decode(await inflate(bytes, files.get(SIGNATURE), view)).trim();
      let signature = new Uint8Array();
      try { signature = Uint8Array.from(atob(text), (c) => c.charCodeAt(0)); } catch { /* an invalid signature */ }
      try {
        const key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
        signatureOk = await crypto.subtle.verify({ name: "Ed25519" }, key, signature, manifestBytes);
        if (!signatureOk) report.problems.push(t("verify.signatureBad"));
      } catch {
        report.problems.push(t("verify.noEd25519"));
      }
    }
  }
  const listed = new Map((manifest.files || []).map((f) => [String(f.path), f]));
  for (const [name, entry] of [...listed].sort()) {
    if (!files.has(name)) { report.problems.push(t("verify.missingFile", { name })); continue; }
    const content = await inflate(bytes, files.get(name), view);
    const digest = await sha256(content);
    report.filesChecked += 1;
    if (digest !== entry.sha256 || content.length !== entry.bytes) report.problems.push(t("verify.changedFile", { name }));
  }
  for (const name of [...files.keys()].sort()) {
    if (!listed.has(name) && name !== MANIFEST && name !== SIGNATURE) report.problems.push(t("verify.addedFile", { name }));
  }
  let breaks = 0;
  for (const camera of manifest.cameras || []) {
    for (const part of camera.parts || []) {
      const segments = part.segments || [];
      for (let i = 1; i < segments.length; i++) if (segments[i].prev_sha256 !== segments[i - 1].sha256) breaks += 1;
    }
  }
  if (breaks) report.notes.push(t("verify.chainGaps", { n: breaks }));
  report.ok = signatureOk && report.problems.length === 0;
  return report;
}
