// The devtools page. One page serves the three mounts (a live store, a
// store directory, a sync server): api/info says which views exist, and
// api/live (Server-Sent Events) says what changed, so each view fetches only
// what is new since the cursor it holds.
import { api, ApiError, el, fmtValue, fmtDuration, fmtSeq, debounce, showMessage, clearMessage } from "./lib.js";
import { drawGraph } from "./graph.js";

const $ = (sel) => document.querySelector(sel);

const VIEW_TITLES = {
  data: "Data", queries: "Queries", events: "Eventlog", sync: "Sync", export: "Export / import",
  graph: "Graph", sql: "SQL", stores: "Stores",
};

const page = {
  info: null,
  view: null,
  live: "connecting", // connecting | live | polling
};

// ---------- start and routing ----------

async function start() {
  let info;
  try {
    info = await api("api/info");
  } catch (err) {
    // A sync server mount older than api/info answers 404: it is a server page.
    if (err instanceof ApiError && err.status === 404) info = { mode: "server", views: ["stores"] };
    else { showMessage(`cannot load api/info: ${err.message}`); return; }
  }
  page.info = info;
  if (info.mode === "server") {
    info.serverViews = info.views || [];
    info.views = ["stores"];
  }
  renderChrome(info);
  window.addEventListener("hashchange", route);
  route();
  connectLive();
}

function renderChrome(info) {
  $("#mode").textContent = info.mode;
  const ident = [];
  if (info.storeId) ident.push(`store ${info.storeId}`);
  if (info.clientId) ident.push(`client ${info.clientId}`);
  if (info.sessionId) ident.push(`session ${info.sessionId}`);
  $("#ident").textContent = ident.join(" · ");
  const tabs = $("#tabs");
  tabs.replaceChildren();
  const server = info.mode === "server";
  // A server's events and per-store sync figures live in its stores view.
  const order = server ? ["stores", "data", "queries", "export", "graph", "sql"]
    : ["data", "queries", "events", "sync", "export", "graph", "sql"];
  const unavailable = info.unavailable || {};
  for (const v of order) {
    if (info.views.includes(v)) {
      tabs.append(el("a", { href: `#/${v}`, id: `tab-${v}`, "data-view": v }, VIEW_TITLES[v]));
    } else if (unavailable[v]) {
      tabs.append(el("span", { class: "tab-off", id: `tab-${v}`, title: unavailable[v] }, VIEW_TITLES[v]));
    }
  }
  $("#import-pane").hidden = !!info.readOnly;
  $("#import-off").hidden = !info.readOnly;
  const notes = [];
  if (info.mode === "dir") {
    notes.push("Read-only: a store directory opened without the app's schema, so nothing can be edited and there is no query inspector or reactivity graph.");
  } else if (info.readOnly && !server) {
    notes.push("Read-only: edits and imports are refused.");
  }
  for (const [v, why] of Object.entries(unavailable)) {
    // A server page lacks the client views by nature (their tabs say why);
    // only missing sync figures are news there.
    if (!server || v === "sync") notes.push(`${server ? "Connected clients and push rates" : VIEW_TITLES[v] || v}: ${why}.`);
  }
  $("#notice").hidden = notes.length === 0;
  $("#notice").textContent = notes.join(" ");
}

function route() {
  const info = page.info;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  let view = parts[0];
  if (!info.views.includes(view)) {
    if (view && info.unavailable && info.unavailable[view]) {
      showMessage(`${VIEW_TITLES[view] || view} is not available here: ${info.unavailable[view]}`);
    }
    view = info.views[0];
  }
  page.view = view;
  for (const s of document.querySelectorAll("section.view")) s.hidden = true;
  $(`#view-${view}`).hidden = false;
  if (view === "stores") $("#view-events").hidden = !servers.selected;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === view);
  const arg = parts.slice(1).join("/");
  VIEWS[view].open(arg);
}

// ---------- live feed ----------

function connectLive() {
  let opened = false;
  const es = new EventSource("api/live");
  const setState = (s, text) => { page.live = s; $("#status").dataset.state = s; $("#status").textContent = text; };
  es.onopen = () => {
    // After a reconnect, catch up on what the feed missed meanwhile.
    if (opened) VIEWS[page.view].poll?.();
    opened = true;
    setState("live", "live");
  };
  es.onerror = () => {
    if (!opened) {
      // No live feed at this mount: poll instead.
      es.close();
      setState("polling", "polling every 2 s");
      setInterval(() => VIEWS[page.view].poll?.(), 2000);
      return;
    }
    setState("connecting", "reconnecting…");
  };
  es.addEventListener("commit", (e) => {
    const msg = JSON.parse(e.data);
    $("#status").title = `head ${msg.head}`;
    data.onCommit(msg);
    events.onCommit(msg);
    if (page.view === "queries") queries.refresh();
    if (page.view === "graph") graph.refresh();
  });
  es.addEventListener("sync", (e) => sync.onStatus(JSON.parse(e.data)));
  es.addEventListener("queries", () => {
    if (page.view === "queries") queries.refresh();
    if (page.view === "graph") graph.refresh();
  });
  es.addEventListener("store", (e) => servers.onStore(JSON.parse(e.data)));
}

// ---------- data browser ----------

const data = {
  tables: [],
  table: null,
  offset: 0,
  limit: 100,
  sort: "",
  dir: "asc",
  total: 0,
  columns: [],
  rows: [],
  editing: false,

  async open(name) {
    await this.loadTables();
    if (!name && this.tables.length > 0) name = this.tables[0].name;
    if (name !== this.table) {
      this.table = name; this.offset = 0; this.sort = ""; this.dir = "asc";
      $("#data-error").hidden = true;
    }
    this.renderList();
    await this.loadRows();
  },
  poll() { this.reloadSoon(); },
  onCommit(msg) {
    if (page.view !== "data") return;
    if (!msg.tables || msg.tables.includes(this.table)) this.reloadSoon();
    else this.tablesSoon();
  },
  reloadSoon: debounce(() => { data.loadTables().then(() => data.renderList()); data.loadRows(); }, 80),
  tablesSoon: debounce(() => data.loadTables().then(() => data.renderList()), 200),

  meta() { return this.tables.find((t) => t.name === this.table); },

  async loadTables() {
    try {
      this.tables = await api("api/tables");
    } catch (err) { this.fail(err, "load"); }
  },
  renderList() {
    const ul = $("#table-list");
    ul.replaceChildren();
    for (const t of this.tables) {
      const li = el("li", { "data-table": t.name, class: t.name === this.table ? "selected" : "" },
        el("a", { href: `#/data/${encodeURIComponent(t.name)}` }, t.name),
        el("span", { class: "count" }, String(t.rowCount ?? "")),
        t.kind === "clientDocument" ? el("span", { class: "tag" }, "client doc") : null,
        t.editable ? null : el("span", { class: "tag ro", title: t.readOnlyReason || "read-only" }, "read-only"));
      ul.append(li);
    }
    if (this.tables.length === 0) ul.append(el("li", { class: "muted" }, "No state tables."));
  },
  async loadRows() {
    if (!this.table) return;
    if (this.editing) return; // a reload would drop the input being typed in
    const name = this.table;
    const q = new URLSearchParams({ offset: this.offset, limit: this.limit });
    if (this.sort) { q.set("sort", this.sort); q.set("dir", this.dir); }
    $("#data-title").textContent = name;
    const meta = this.meta();
    $("#data-readonly").hidden = !meta || meta.editable;
    $("#data-readonly").textContent = meta && !meta.editable ? `read-only: ${meta.readOnlyReason || "no edit event"}` : "";
    $("#data-hint").hidden = !meta || !meta.editable;
    let res;
    try {
      res = await api(`api/tables/${encodeURIComponent(name)}/rows?${q}`);
    } catch (err) {
      if (name !== this.table) return;
      this.columns = []; this.rows = []; this.total = 0; this.shown = null;
      this.renderRows();
      this.fail(err, "load");
      return;
    }
    if (name !== this.table) return;
    // A refused edit stays said until the next edit; a failed load is over.
    if ($("#data-error").dataset.source === "load") $("#data-error").hidden = true;
    // The same page again (a commit to another row's table, a refused
    // edit) leaves the rows as they are, so nothing under the pointer moves.
    const seen = JSON.stringify([name, res.columns, res.rows, res.total, this.sort, this.dir, this.offset, meta && meta.editable]);
    if (seen === this.shown) return;
    this.shown = seen;
    this.columns = (res.columns || []).map((c) => (typeof c === "string" ? c : c.name));
    this.rows = res.rows || [];
    this.total = res.total ?? this.rows.length;
    this.truncated = !!res.truncated;
    this.renderRows();
  },
  fail(err, source = "edit") {
    $("#data-error").dataset.source = source;
    $("#data-error").hidden = false;
    $("#data-error").textContent = err.message;
    showMessage(err.message);
  },
  renderRows() {
    const thead = $("#data-table thead");
    const tbody = $("#data-table tbody");
    const tr = el("tr");
    for (const c of this.columns) {
      const arrow = this.sort === c ? (this.dir === "asc" ? " ▲" : " ▼") : "";
      const th = el("th", { "data-col": c, class: "sortable", title: "sort" }, c + arrow);
      th.addEventListener("click", () => {
        if (this.sort === c) this.dir = this.dir === "asc" ? "desc" : "asc";
        else { this.sort = c; this.dir = "asc"; }
        this.offset = 0;
        this.loadRows();
      });
      tr.append(th);
    }
    thead.replaceChildren(tr);
    tbody.replaceChildren();
    const keys = this.keyColumns();
    this.rows.forEach((row, i) => {
      const r = el("tr", { "data-row": String(i) });
      if (keys.length > 0) r.dataset.key = keys.map((k) => String(row[this.columns.indexOf(k)])).join("/");
      row.forEach((v, j) => {
        const td = el("td", { "data-col": this.columns[j] });
        fmtValue(td, v);
        td.addEventListener("dblclick", () => this.edit(td, i, j));
        r.append(td);
      });
      tbody.append(r);
    });
    const end = this.offset + this.rows.length;
    $("#data-range").textContent = this.table
      ? `${this.rows.length ? this.offset + 1 : 0}–${end} of ${this.total}${this.truncated ? " (answer cut at the size limit)" : ""}` : "";
    $("#data-prev").disabled = this.offset === 0;
    $("#data-next").disabled = end >= this.total;
  },
  keyColumns() {
    const meta = this.meta();
    if (!meta) return [];
    const pk = (meta.columns || []).filter((c) => c.primaryKey).map((c) => c.name);
    if (pk.length > 0) return pk;
    return this.columns.includes("id") ? ["id"] : [];
  },
  edit(td, i, j) {
    const meta = this.meta();
    if (!meta || !meta.editable) {
      showMessage(`${this.table} is read-only: ${meta?.readOnlyReason || "no edit event"}`);
      return;
    }
    if (this.editing) return;
    const column = this.columns[j];
    const colMeta = (meta.columns || []).find((c) => c.name === column) || {};
    const keys = this.keyColumns();
    const key = {};
    for (const k of keys) key[k] = this.rows[i][this.columns.indexOf(k)];
    const old = this.rows[i][j];
    const input = el("input", { class: "cell-input", value: old === null ? "" : (typeof old === "object" ? JSON.stringify(old) : String(old)) });
    td.replaceChildren(input);
    td.classList.add("editing");
    this.editing = true;
    input.focus();
    input.select();
    let done = false;
    const finish = async (commit) => {
      if (done) return;
      done = true;
      this.editing = false;
      td.classList.remove("editing");
      if (!commit) { fmtValue(td, old); return; }
      let value;
      try {
        value = parseCell(input.value, colMeta);
      } catch (err) {
        fmtValue(td, old);
        this.fail(new Error(`${column}: ${err.message}`));
        return;
      }
      td.classList.add("pending");
      td.textContent = input.value;
      try {
        const res = await api(`api/tables/${encodeURIComponent(this.table)}/edit`, {
          method: "POST", body: JSON.stringify({ key, column, value }),
        });
        $("#data-error").hidden = true;
        clearMessage();
        $("#status").title = `committed ${res.event?.name} ${res.event?.seq}`;
        showMessage(`committed ${res.event?.name || "event"} ${res.event?.seq || ""}`, "ok");
      } catch (err) {
        fmtValue(td, old);
        this.fail(err);
      }
      td.classList.remove("pending");
      this.loadRows();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      if (e.key === "Escape") { e.preventDefault(); finish(false); }
    });
    input.addEventListener("blur", () => finish(false));
  },
};

// parseCell turns the typed text into the JSON value the column holds.
function parseCell(text, col) {
  const type = (col.type || "").toLowerCase();
  if (text === "" && col.nullable) return null;
  if (type.includes("int") || type.includes("real") || type.includes("num")) {
    const n = Number(text);
    if (text.trim() === "" || Number.isNaN(n)) throw new Error(`want a number, not ${JSON.stringify(text)}`);
    return n;
  }
  if (type.includes("bool")) {
    if (/^(true|1|yes)$/i.test(text)) return true;
    if (/^(false|0|no)$/i.test(text)) return false;
    throw new Error(`want true or false, not ${JSON.stringify(text)}`);
  }
  if (type.includes("json") || col.name === "value") {
    try { return JSON.parse(text); } catch { throw new Error("want JSON"); }
  }
  return text;
}

$("#data-prev").addEventListener("click", () => { data.offset = Math.max(0, data.offset - data.limit); data.loadRows(); });
$("#data-next").addEventListener("click", () => { data.offset += data.limit; data.loadRows(); });

// ---------- query inspector ----------

const queries = {
  open() { this.refresh(); },
  poll() { this.refresh(); },
  refresh: debounce(async () => {
    let list;
    try { list = await api("api/queries"); } catch (err) { showMessage(err.message); return; }
    const tbody = $("#queries-table tbody");
    tbody.replaceChildren();
    for (const q of list) {
      const sql = el("td", { class: "code" }, q.sql || "");
      if (q.args && q.args.length) sql.append(el("div", { class: "muted" }, `args ${JSON.stringify(q.args)}`));
      const result = el("td", { class: "code result" });
      const text = q.lastResult === undefined ? "" : JSON.stringify(q.lastResult);
      result.textContent = text.length > 300 ? text.slice(0, 300) + "…" : text;
      result.title = text;
      tbody.append(el("tr", { "data-id": String(q.id), class: q.stale ? "stale" : "" },
        el("td", {}, q.label || String(q.id)), el("td", {}, el("span", { class: `tag k-${q.kind}` }, q.kind)),
        sql, el("td", {}, (q.tables || []).join(", ")), el("td", { class: "num" }, String(q.subscribers ?? "")),
        el("td", { class: "num runs" }, String(q.runCount ?? "")), el("td", { class: "num" }, fmtDuration(q.lastDurationNs)),
        el("td", { class: "num" }, fmtDuration(q.meanDurationNs)), result));
    }
    $("#queries-empty").hidden = list.length > 0;
    $("#queries-count").textContent = `${list.length} queries`;
  }, 100),
};

// ---------- eventlog browser ----------

const PAGE = 100;

const events = {
  items: [],
  seen: new Set(),
  cursor: null,
  more: false,
  filters: {},
  inflight: null,
  again: false,
  opened: false,

  // base is the events URL of the store shown: the store's own log, or one
  // store of a sync server.
  base() {
    if (page.info.mode === "server") return `api/stores/${encodeURIComponent(servers.selected)}/events`;
    return "api/events";
  },
  open() {
    if (!this.opened) { this.opened = true; this.reset(); }
    else this.tail();
  },
  poll() { this.tail(); },
  onCommit() { this.tail(); },
  reset(before = null) {
    this.items = []; this.seen = new Set(); this.cursor = null; this.more = false; this.before = before;
    $("#events-table tbody").replaceChildren();
    $("#events-error").hidden = true;
    this.fetch();
  },
  // tail asks for what came after the last event held, once the page has
  // reached the end of the log; before that "load more" is the way on.
  tail() {
    if (!this.opened || this.more) return;
    if (page.info.mode === "server" && !servers.selected) return;
    this.fetch();
  },
  fetch() {
    if (this.inflight) { this.again = true; return this.inflight; }
    this.inflight = this.fetchOnce().finally(() => {
      this.inflight = null;
      if (this.again) { this.again = false; if (!this.more) this.fetch(); }
    });
    return this.inflight;
  },
  // latest shows the last page of the log and follows it from there: a
  // server page asks for the page before its head, a store page starts its
  // range a page before the local head.
  async latest() {
    if (page.info.mode === "server") {
      const st = servers.list.find((s) => s.storeId === servers.selected);
      if (!st) return;
      this.reset(Number(st.head) + 1);
      return;
    }
    let head;
    try {
      const s = sync.status || await api("api/sync");
      head = s.localHead && typeof s.localHead === "object" ? s.localHead.global : parseInt(String(s.localHead).replace(/^e/, ""), 10);
    } catch (err) { showMessage(err.message); return; }
    if (!Number.isFinite(head)) return;
    const from = `e${Math.max(1, head - PAGE + 1)}`;
    $("#f-from").value = from;
    this.filters = { ...this.filters, from };
    this.reset();
  },
  async fetchOnce() {
    const base = this.base();
    const q = new URLSearchParams({ limit: PAGE });
    if (this.cursor !== null) q.set("after", this.cursor);
    else if (this.before) q.set("before", this.before);
    this.before = null;
    for (const [k, v] of Object.entries(this.filters)) if (v && !(k === "status" && v === "all")) q.set(k, v);
    let res;
    try {
      res = await api(`${base}?${q}`);
    } catch (err) {
      $("#events-error").hidden = false;
      $("#events-error").textContent = err.message;
      showMessage(err.message);
      return;
    }
    if (base !== this.base()) return;
    $("#events-error").hidden = true;
    const tbody = $("#events-table tbody");
    for (const raw of res.events || []) {
      const e = normEvent(raw);
      if (this.seen.has(e.seq)) continue;
      this.seen.add(e.seq);
      this.items.push(e);
      tbody.append(eventRow(e));
    }
    const next = res.next ?? res.nextAfter;
    if (next !== undefined && next !== null && next !== "") this.cursor = next;
    else if (this.items.length > 0) this.cursor = this.items[this.items.length - 1].cursor;
    this.more = !!res.more;
    $("#events-more").hidden = !this.more;
    $("#events-count").textContent = `${this.items.length} events held${this.more ? ", more after" : ""}${res.truncated ? " (page cut at the answer size limit)" : ""}`;
  },
  // markSynced flips pending rows to synced once the upstream head passed them.
  markSynced(upstreamHead) {
    for (const e of this.items) {
      if (!e.synced && !e.clientOnly && e.global <= upstreamHead) {
        e.synced = true;
        const tr = document.querySelector(`#events-table tr[data-seq="${CSS.escape(e.seq)}"]`);
        if (tr) tr.replaceWith(eventRow(e));
      }
    }
  },
};

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function normEvent(e) {
  const sn = e.seqNum;
  let global = typeof sn === "object" && sn !== null ? sn.global : sn;
  if (typeof global !== "number") global = parseInt(String(e.seq || sn).replace(/^e/, ""), 10);
  const seq = e.seq || (typeof sn === "object" ? fmtSeq(sn) : `e${sn}`);
  const parent = e.parent || (e.parentSeqNum !== undefined ? (typeof e.parentSeqNum === "object" ? fmtSeq(e.parentSeqNum) : `e${e.parentSeqNum}`) : "");
  return {
    seq, global, parent, name: e.name, args: e.args, argsOmitted: e.argsOmitted, clientId: e.clientId, sessionId: e.sessionId,
    synced: e.synced ?? true, clientOnly: !!e.clientOnly, createdAt: e.createdAt,
    cursor: typeof sn === "number" ? sn : seq,
  };
}

function eventRow(e) {
  const args = e.argsOmitted ? `(${e.argsOmitted})` : JSON.stringify(e.args);
  const status = e.clientOnly ? el("span", { class: "tag client-only" }, "client-only")
    : e.synced ? el("span", { class: "tag synced" }, "synced") : el("span", { class: "tag pending" }, "pending");
  const cls = [e.clientOnly ? "client-only" : "", e.synced || e.clientOnly ? "" : "pending"].join(" ").trim();
  return el("tr", { "data-seq": e.seq, class: cls },
    el("td", { class: "seq" }, e.seq), el("td", { class: "seq muted" }, e.parent), el("td", {}, e.name),
    el("td", { class: "code args", title: args }, args), el("td", { class: "id" }, e.clientId || ""),
    el("td", { class: "id" }, e.sessionId || ""), el("td", { title: e.createdAt || "" }, status));
}

$("#event-filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  events.filters = { name: f.get("name").trim(), from: f.get("from").trim(), to: f.get("to").trim(), status: f.get("status") };
  events.reset();
});
$("#events-more").addEventListener("click", () => events.fetch());
$("#events-latest").addEventListener("click", () => events.latest());

// ---------- sync status ----------

const sync = {
  status: null,
  timer: null,
  async open() {
    try { this.onStatus(await api("api/sync")); } catch (err) { showMessage(err.message); }
  },
  poll() { this.open(); },
  onStatus(s) {
    const prev = this.status;
    this.status = s;
    if (typeof s.upstreamHead === "number") events.markSynced(s.upstreamHead);
    // A rebase renumbers pending events: the held ones are stale.
    const gen = (x) => (x && typeof x.localHead === "object" && x.localHead ? x.localHead.rebaseGeneration : 0);
    if (prev && gen(prev) !== gen(s) && events.opened) events.reset();
    this.render();
  },
  render() {
    const s = this.status;
    if (!s) return;
    const dl = $("#sync-list");
    dl.replaceChildren();
    const row = (k, v, cls) => { dl.append(el("dt", {}, k), el("dd", { class: cls || "", "data-field": k }, v)); };
    if (s.enabled === false) row("sync", "not configured: this store runs without a sync backend", "muted");
    row("connected", s.connected ? "connected" : "disconnected", s.connected ? "ok" : "bad");
    row("backend id", s.backendId || "—");
    row("local head", typeof s.localHead === "object" && s.localHead ? fmtSeq(s.localHead) : String(s.localHead ?? "—"));
    row("upstream head", s.upstreamHead !== undefined ? `e${s.upstreamHead}` : "—");
    row("pending", String(s.pendingCount ?? 0));
    row("in sync", s.isSynced ? "yes" : "no", s.isSynced ? "ok" : "");
    row("last error", s.error || "none", s.error ? "bad" : "muted");
    const retry = el("dd", { "data-field": "next retry", id: "retry" });
    dl.append(el("dt", {}, "next retry"), retry);
    if (s.stopped) row("stopped", "syncing ended for good; the store keeps working locally", "bad");
    $("#sync-raw").textContent = JSON.stringify(s, null, 2);
    this.tick();
    clearInterval(this.timer);
    if (s.nextRetryAt) this.timer = setInterval(() => this.tick(), 250);
  },
  tick() {
    const r = $("#retry");
    if (!r) return;
    const at = this.status?.nextRetryAt;
    if (!at) { r.textContent = "—"; return; }
    const left = Math.max(0, (Date.parse(at) - Date.now()) / 1000);
    r.textContent = left > 0 ? `in ${left.toFixed(1)} s` : "now";
  },
};

// ---------- export / import ----------

const transfer = {
  open() { $("#import-result").textContent = ""; },
};

$("#import-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("#import-file").files[0];
  const out = $("#import-result");
  if (!file) { out.textContent = "choose an exported file first"; out.className = "inline-error"; return; }
  out.className = "muted";
  out.textContent = "importing…";
  try {
    const res = await api("api/import", { method: "POST", body: await file.text(), headers: { "Content-Type": "application/x-ndjson" } });
    out.className = "ok";
    out.textContent = `imported ${res.imported} events`;
  } catch (err) {
    out.className = "inline-error";
    out.textContent = err.message;
  }
});

// ---------- reactivity graph ----------

const graph = {
  open() { this.refresh(); },
  poll() { this.refresh(); },
  refresh: debounce(async () => {
    let g;
    try { g = await api("api/graph"); } catch (err) { showMessage(err.message); return; }
    const lc = g.lastCommit;
    $("#graph-commit").textContent = lc && lc.seq && lc.seq !== "e0" ? `last commit ${lc.seq} re-ran ${(lc.reran || []).length} node(s)` : "no commit since the store opened";
    drawGraph($("#graph"), g);
  }, 100),
};

// ---------- SQLite playground ----------

const sql = {
  open() { $("#sql-input").focus(); },
  async run() {
    const text = $("#sql-input").value;
    const err = $("#sql-error");
    err.hidden = true;
    $("#sql-note").textContent = "running…";
    let res;
    try {
      res = await api("api/sql", { method: "POST", body: JSON.stringify({ sql: text }) });
    } catch (e) {
      res = { error: e.message };
    }
    const thead = $("#sql-table thead");
    const tbody = $("#sql-table tbody");
    if (res.error) {
      err.hidden = false;
      err.textContent = res.error;
      $("#sql-note").textContent = "";
      thead.replaceChildren();
      tbody.replaceChildren();
      return;
    }
    const cols = (res.columns || []).map((c) => (typeof c === "string" ? c : c.name));
    thead.replaceChildren(el("tr", {}, ...cols.map((c) => el("th", {}, c))));
    tbody.replaceChildren(...(res.rows || []).map((r) => {
      const tr = el("tr");
      for (const v of r) { const td = el("td"); fmtValue(td, v); tr.append(td); }
      return tr;
    }));
    const n = (res.rows || []).length;
    $("#sql-note").textContent = `${n} row${n === 1 ? "" : "s"}` +
      (res.truncated ? ` — cut by the ${res.truncatedBy || "server's limit"}; narrow the query (WHERE, LIMIT) to see the rest` : "");
  },
};

$("#sql-form").addEventListener("submit", (ev) => { ev.preventDefault(); sql.run(); });
$("#sql-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); sql.run(); }
});

// ---------- sync server: stores ----------

const servers = {
  list: [],
  selected: null,
  stats: new Map(), // storeId → {clients, pushRate} from the live feed

  async open(storeId) {
    await this.refresh();
    if (storeId && storeId !== this.selected) this.select(storeId);
  },
  poll() { this.refresh(); events.tail(); },
  onStore(msg) {
    this.stats.set(msg.storeId, msg);
    const known = this.list.find((s) => s.storeId === msg.storeId);
    if (!known) { this.refresh(); return; }
    known.head = msg.head;
    this.render();
    if (msg.storeId === this.selected) events.tail();
  },
  refresh: debounce(async () => {
    try { servers.list = await api("api/stores"); } catch (err) { showMessage(err.message); return; }
    servers.render();
  }, 50),
  // render updates the rows in place, so that a row under the pointer
  // survives the live feed's updates.
  render() {
    const body = $("#stores tbody");
    const rows = new Map([...body.children].map((tr) => [tr.dataset.store, tr]));
    let prev = null;
    for (const s of this.list) {
      const st = this.stats.get(s.storeId) || {};
      const clients = "clients" in st ? st.clients : s.clients;
      const rate = "pushRate" in st ? st.pushRate : s.pushRate;
      let tr = rows.get(s.storeId);
      rows.delete(s.storeId);
      if (!tr) {
        tr = el("tr", { "data-store": s.storeId },
          el("td", {}, s.storeId), el("td", { class: "num" }), el("td", { class: "num" }), el("td", { class: "num" }), el("td", { class: "id" }));
        tr.addEventListener("click", () => { location.hash = `#/stores/${encodeURIComponent(s.storeId)}`; });
      }
      const cells = tr.children;
      setText(cells[1], typeof s.head === "object" ? fmtSeq(s.head) : `e${s.head}`);
      setText(cells[2], clients == null ? "—" : String(Array.isArray(clients) ? clients.length : clients));
      cells[2].title = clients == null ? "known only to a running sync server" : "";
      setText(cells[3], rate == null ? "—" : Number(rate).toFixed(1));
      setText(cells[4], s.backendId || "");
      tr.classList.toggle("selected", s.storeId === this.selected);
      const want = prev ? prev.nextSibling : body.firstChild;
      if (want !== tr) body.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of rows.values()) tr.remove();
    $("#no-stores").hidden = this.list.length > 0;
  },
  select(storeId) {
    this.selected = storeId;
    this.render();
    $("#pick").hidden = true;
    const pane = $("#store-events-pane");
    const ev = $("#view-events");
    if (ev.parentElement !== pane) pane.append(ev);
    ev.hidden = false;
    $("#events-store").textContent = storeId;
    $("#f-status").parentElement.hidden = true; // a server's events are all synced
    events.opened = true;
    events.reset();
  },
};

// A subscription made or dropped by the app sends no live event: the
// inspector and the graph refresh on their own while shown.
setInterval(() => {
  if (document.hidden) return;
  if (page.view === "queries") queries.refresh();
  if (page.view === "graph") graph.refresh();
}, 1500);

const VIEWS = { data, queries, events, sync, export: transfer, graph, sql, stores: servers };

$("#message button").addEventListener("click", clearMessage);
start();
