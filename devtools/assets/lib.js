// Small helpers shared by the views: JSON requests, DOM building, formats.

// ApiError is a failed API request: the HTTP status and the server's own
// words from its {"error": "..."} answer.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api fetches a JSON answer; a 4xx/5xx answer throws its "error" text.
export async function api(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (init.body !== undefined && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { cache: "no-store", ...init, headers });
  } catch (err) {
    throw new ApiError(0, `${path}: the server did not answer (${err.message})`);
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON: keep the text */ }
  if (!res.ok) {
    const why = body && typeof body.error === "string" ? body.error : text.trim() || res.statusText;
    throw new ApiError(res.status, `${why} (HTTP ${res.status})`);
  }
  if (body === null && text) throw new ApiError(res.status, `${path}: the answer is not JSON`);
  return body;
}

// el builds an element: attributes (null ones skipped) and children (strings
// become text; null children are skipped).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === "") continue;
    if (k === "value") e.value = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c);
  }
  return e;
}

// fmtValue shows a SQL value in a cell: NULL marked, objects as JSON.
export function fmtValue(td, v) {
  td.classList.toggle("null", v === null);
  if (v === null || v === undefined) td.textContent = "NULL";
  else if (typeof v === "object") td.textContent = JSON.stringify(v);
  else td.textContent = String(v);
}

// fmtSeq writes a sequence number as the eventlog does: e5, e5.1, e5r1.
export function fmtSeq(s) {
  if (!s || typeof s !== "object") return String(s ?? "");
  let out = `e${s.global}`;
  if (s.client) out += `.${s.client}`;
  if (s.rebaseGeneration) out += `r${s.rebaseGeneration}`;
  return out;
}

// fmtDuration writes nanoseconds for a person.
export function fmtDuration(ns) {
  if (ns === undefined || ns === null) return "";
  if (ns < 1e3) return `${ns} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

// debounce coalesces a burst of calls (a stream of commits) into one,
// run after ms of quiet or at most every 4·ms.
export function debounce(fn, ms) {
  let timer = null;
  let first = 0;
  return function (...args) {
    const now = Date.now();
    if (timer === null) first = now;
    clearTimeout(timer);
    const wait = now - first > 4 * ms ? 0 : ms;
    timer = setTimeout(() => { timer = null; fn.apply(this, args); }, wait);
  };
}

// showMessage puts a message in the banner under the tabs: errors stay
// until dismissed or replaced, confirmations fade.
let fade = null;
export function showMessage(text, kind = "error") {
  const m = document.querySelector("#message");
  m.querySelector("span").textContent = text;
  m.dataset.kind = kind;
  m.hidden = false;
  clearTimeout(fade);
  if (kind !== "error") fade = setTimeout(clearMessage, 4000);
}

export function clearMessage() {
  document.querySelector("#message").hidden = true;
}
