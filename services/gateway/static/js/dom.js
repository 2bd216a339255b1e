// Building DOM nodes without ever parsing HTML from data: every string lands as text.

export function h(tag, props = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in el && !svg && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// A labelled form field; `input` is the control (input, select, textarea).
export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label", text: label }), input,
    hint ? h("small", { class: "hint", text: hint }) : null);
}

export function button(text, onclick, props = {}) {
  return h("button", { type: "button", ...props, onclick }, text);
}

// A modal dialog; resolves with the value passed to close(), or null when cancelled.
export function dialog(title, build) {
  return new Promise((resolve) => {
    const box = h("dialog", { class: "modal" });
    const close = (value) => { box.close(); box.remove(); resolve(value); };
    box.addEventListener("cancel", (event) => { event.preventDefault(); close(null); });
    box.append(h("h2", { text: title }), build(close));
    document.body.append(box);
    box.showModal();
    const first = box.querySelector("input, textarea, select, button");
    if (first) first.focus();
  });
}
