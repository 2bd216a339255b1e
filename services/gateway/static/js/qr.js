// The TOTP enrolment QR code, drawn here from the otpauth:// URI (vendored encoder, no network).
import qrcodegen from "../vendor/qrcodegen.js";
import { h } from "./dom.js";

export function qrSvg(text, scale = 5) {
  const qr = qrcodegen.QrCode.encodeText(text, qrcodegen.QrCode.Ecc.MEDIUM);
  const border = 4;
  const size = qr.size + border * 2;
  let path = "";
  for (let y = 0; y < qr.size; y++) {
    for (let x = 0; x < qr.size; x++) if (qr.getModule(x, y)) path += `M${x + border},${y + border}h1v1h-1z`;
  }
  return h("svg:svg", { class: "qr", viewBox: `0 0 ${size} ${size}`, width: size * scale, height: size * scale, role: "img" },
    h("svg:rect", { width: size, height: size, fill: "#fff" }),
    h("svg:path", { d: path, fill: "#000" }));
}
