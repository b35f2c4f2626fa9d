// pipeline_nb live view: step rows and streamed text.
// Text arrives as custom messages so each byte crosses the wire once:
//   {a: stepId, t: text, n: deltaCount}  append      {r: stepId}  reset (a retry)
const ICON = { pending: "○", running: "◐", ok: "✓", error: "✗", skipped: "↷", interrupted: "■" };

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function elapsed(row, now) {
  if (row.elapsed != null) return row.elapsed.toFixed(1) + "s";
  if (row.started != null) return ((now - row.started) / 1000).toFixed(1) + "s";
  return "";
}

function render({ model, el: root }) {
  root.classList.add("pnb-live");
  const head = el("div", "pnb-head");
  const table = el("table", "pnb-rows");
  const panes = el("div", "pnb-panes");
  root.append(head, table, panes);
  const texts = new Map();   // step id -> {pane, body, count}
  const rowCells = new Map(); // step id -> {tokens, time}

  function pane(id) {
    let entry = texts.get(id);
    if (!entry) {
      const box = el("details", "pnb-pane");
      box.dataset.step = id;
      box.open = true;
      const summary = el("summary", "pnb-pane-title", id);
      const body = el("div", "pnb-text");
      box.append(summary, body);
      panes.append(box);
      entry = { box, body, count: 0 };
      texts.set(id, entry);
    }
    return entry;
  }

  function drawRows() {
    const rows = model.get("rows");
    const now = Date.now();
    table.replaceChildren();
    rowCells.clear();
    let active = null;
    for (const row of rows) {
      const tr = el("tr", "pnb-row pnb-" + row.status);
      tr.dataset.step = row.id;
      tr.dataset.status = row.status;
      const tokens = el("td", "pnb-tokens", row.tokens ? row.tokens + " tok" : "");
      const time = el("td", "pnb-time", elapsed(row, now));
      tr.append(
        el("td", "pnb-icon", ICON[row.status] || "?"),
        el("td", "pnb-id", row.id),
        el("td", "pnb-status", row.status),
        el("td", "pnb-model", row.model || ""),
        tokens, time,
        el("td", "pnb-note", row.note || ""),
      );
      table.append(tr);
      rowCells.set(row.id, { row, tokens, time });
      if (row.status === "running") active = row.id;
      const entry = texts.get(row.id);
      if (entry) {
        entry.box.classList.toggle("pnb-done", row.status !== "running");
        entry.box.querySelector("summary").textContent = row.id + " · " + row.status;
      }
    }
    head.textContent = model.get("title");
    if (active) for (const [id, entry] of texts) entry.box.open = id === active;
    const lastDone = [...rows].reverse().find((r) => texts.has(r.id));
    if (!active && lastDone) texts.get(lastDone.id).box.open = true;
  }

  function onMessage(msg) {
    if (msg.r !== undefined) {
      const entry = pane(msg.r);
      entry.body.textContent = "";
      entry.count = 0;
      return;
    }
    if (msg.a === undefined) return;
    const entry = pane(msg.a);
    const body = entry.body;
    const stick = body.scrollHeight - body.scrollTop - body.clientHeight < 24;
    body.append(document.createTextNode(msg.t));
    entry.count = msg.n;
    const cells = rowCells.get(msg.a);
    if (cells) cells.tokens.textContent = msg.n + " tok";
    if (stick) body.scrollTop = body.scrollHeight;
  }

  const tick = setInterval(() => {
    const now = Date.now();
    for (const { row, time } of rowCells.values()) if (row.status === "running") time.textContent = elapsed(row, now);
  }, 250);

  model.on("change:rows", drawRows);
  model.on("change:title", drawRows);
  model.on("msg:custom", onMessage);
  drawRows();
  return () => {
    clearInterval(tick);
    model.off("change:rows", drawRows);
    model.off("change:title", drawRows);
    model.off("msg:custom", onMessage);
  };
}

export default { render };
