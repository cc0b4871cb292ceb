// The reactivity graph drawn as SVG: nodes in layers by dependency depth
// (sources on the left), edges as curves, stale and re-ran nodes marked.

const NS = "http://www.w3.org/2000/svg";
const W = 190, H = 46, GAPX = 70, GAPY = 18, PAD = 16;

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// layers assigns each node the length of the longest path reaching it, so
// every edge points to a later layer; a cycle stops growing after n rounds.
export function layers(nodes, edges) {
  const depth = new Map(nodes.map((n) => [n.id, 0]));
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of edges) {
      if (!depth.has(e.from) || !depth.has(e.to)) continue;
      const d = depth.get(e.from) + 1;
      if (d > depth.get(e.to)) { depth.set(e.to, d); changed = true; }
    }
    if (!changed) break;
  }
  return depth;
}

export function drawGraph(root, g) {
  const nodes = g.nodes || [];
  const edges = g.edges || [];
  const reran = new Set(((g.lastCommit && g.lastCommit.reran) || []).map(String));
  const depth = layers(nodes, edges);
  const cols = [];
  for (const n of nodes) {
    const d = depth.get(n.id);
    (cols[d] ||= []).push(n);
  }
  const pos = new Map();
  cols.forEach((col, x) => col.forEach((n, y) => pos.set(n.id, { x: PAD + x * (W + GAPX), y: PAD + y * (H + GAPY) })));
  const width = PAD * 2 + Math.max(1, cols.length) * (W + GAPX) - GAPX;
  const height = PAD * 2 + Math.max(1, ...cols.map((c) => c.length)) * (H + GAPY) - GAPY;
  root.setAttribute("width", width);
  root.setAttribute("height", height);
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.replaceChildren();
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
  defs.append(marker);
  root.append(defs);
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mx = (x1 + x2) / 2;
    const hot = reran.has(String(e.from)) && reran.has(String(e.to));
    root.append(svg("path", { d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, class: hot ? "edge hot" : "edge",
      "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to }));
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const cls = ["node", `k-${n.kind}`, n.stale ? "stale" : "clean", reran.has(String(n.id)) ? "reran" : ""].join(" ").trim();
    const grp = svg("g", { class: cls, transform: `translate(${p.x},${p.y})`, "data-id": n.id });
    const label = String(n.label || n.id);
    grp.append(svg("title", {}, `${label}\n${n.kind}, ${n.runCount ?? 0} runs, ${n.stale ? "stale" : "clean"}`));
    grp.append(svg("rect", { width: W, height: H, rx: 6 }));
    grp.append(svg("text", { x: 10, y: 18, class: "label" }, label.length > 28 ? label.slice(0, 27) + "…" : label));
    grp.append(svg("text", { x: 10, y: 36, class: "meta" }, `${n.kind} · ${n.runCount ?? 0} runs · ${n.stale ? "stale" : "clean"}`));
    root.append(grp);
  }
  if (nodes.length === 0) root.append(svg("text", { x: PAD, y: PAD + 14, class: "meta" }, "No reactive nodes yet: subscribe to a query."));
}
