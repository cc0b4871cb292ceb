// The devtools page: polls the JSON API and renders stores and events.
"use strict";

const state = { selected: null, events: [], after: 0 };

const $ = (sel) => document.querySelector(sel);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

async function getJSON(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

async function refreshStores() {
  const stores = await getJSON("api/stores");
  const body = $("#stores tbody");
  body.replaceChildren();
  for (const s of stores) {
    const tr = document.createElement("tr");
    tr.dataset.store = s.storeId;
    if (s.storeId === state.selected) tr.classList.add("selected");
    tr.append(cell(s.storeId), cell(String(s.head)), cell(s.backendId));
    tr.addEventListener("click", () => select(s.storeId));
    body.append(tr);
  }
  $("#no-stores").hidden = stores.length > 0;
}

function select(storeId) {
  state.selected = storeId;
  state.events = [];
  state.after = 0;
  $("#events-store").textContent = storeId;
  $("#pick").hidden = true;
  for (const tr of document.querySelectorAll("#stores tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.store === storeId);
  }
  renderEvents();
  refreshEvents();
}

async function refreshEvents() {
  const storeId = state.selected;
  if (!storeId) return;
  for (;;) {
    const page = await getJSON(`api/stores/${encodeURIComponent(storeId)}/events?after=${state.after}&limit=1000`);
    if (storeId !== state.selected) return;
    state.events.push(...page.events);
    if (page.events.length > 0) state.after = page.events[page.events.length - 1].seqNum;
    if (!page.more) break;
  }
  renderEvents();
}

function renderEvents() {
  const filter = $("#filter").value.trim().toLowerCase();
  const body = $("#events tbody");
  body.replaceChildren();
  const shown = state.events.filter((e) => !filter || e.name.toLowerCase().includes(filter));
  for (const e of shown.slice(-500).reverse()) {
    const tr = document.createElement("tr");
    tr.dataset.seq = String(e.seqNum);
    tr.append(cell(`e${e.seqNum}`), cell(e.name), cell(e.argsOmitted ? `(${e.argsOmitted})` : JSON.stringify(e.args), "args"),
      cell(e.clientId), cell(e.sessionId), cell(e.createdAt));
    body.append(tr);
  }
}

async function tick() {
  try {
    await refreshStores();
    await refreshEvents();
    $("#status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("#status").textContent = `error: ${err.message}`;
  }
}

$("#filter").addEventListener("input", renderEvents);
tick();
setInterval(tick, 1000);
