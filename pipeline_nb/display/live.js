// pipeline_nb live view: a head line, a row per step, and the streamed text of each step.
// Text arrives as custom messages so each byte crosses the wire once:
//   {a: stepId, t: text, n: deltaCount}  append      {r: stepId}  reset (a retry)
// Rows and panes carry data-step / data-status, which the browser tests read.
const ICON = { pending: "○", running: "◐", ok: "✓", error: "✗", skipped: "↷", interrupted: "■" };
const FOLLOW_SLACK = 24; // px from the bottom that still counts as "at the bottom"

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(ms) {
  const s = ms / 1000;
  return s < 60 ? s.toFixed(1) + "s" : Math.floor(s / 60) + "m " + String(Math.floor(s % 60)).padStart(2, "0") + "s";
}

function elapsed(row, now) {
  if (row.elapsed != null) return seconds(row.elapsed * 1000);
  if (row.started != null) return seconds(now - row.started);
  return "";
}

function tokens(n) {
  return n ? n.toLocaleString("en") + " tok" : "";
}

function summary(rows) {
  const count = (s) => rows.filter((r) => r.status === s).length;
  const done = rows.length - count("pending") - count("running");
  const failed = count("error"), stopped = count("interrupted");
  const parts = [];
  if (count("running")) parts.push("running", `${done} of ${rows.length} done`);
  else if (stopped) parts.push("interrupted");
  else if (count("pending") === rows.length) parts.push("starting");
  else parts.push(`${done} of ${rows.length} done`);
  if (failed) parts.push(`${failed} failed`);
  return parts.join(" · ");
}

function icon(status) {
  const td = el("td", "pnb-icon-cell");
  td.append(el("span", "pnb-icon", ICON[status] || "?"));
  return td;
}

function render({ model, el: root }) {
  root.classList.add("pnb-live");
  const head = el("div", "pnb-head");
  const title = el("span", "pnb-title");
  const status = el("span", "pnb-summary");
  head.append(title, status);
  const table = el("table", "pnb-rows");
  const panes = el("div", "pnb-panes");
  root.append(head, table, panes);
  const texts = new Map(); // step id -> {box, head, body, more, user}
  const cells = new Map(); // step id -> {row, tokens, time}

  // A pane belongs to its row; a derived id (a[0], a/b, a.invoke1) to the row it comes from.
  function rowFor(id) {
    const rows = model.get("rows");
    let best = null;
    for (const row of rows) {
      if (row.id === id) return row;
      const next = id.charAt(row.id.length);
      if (id.startsWith(row.id) && "[/.".includes(next) && (!best || row.id.length > best.id.length)) best = row;
    }
    return best;
  }

  function order(id) {
    const row = rowFor(id);
    const i = row ? model.get("rows").indexOf(row) : -1;
    return i < 0 ? Infinity : i;
  }

  function follow(entry) {
    entry.body.scrollTop = entry.body.scrollHeight;
    entry.more.hidden = true;
  }

  function pane(id) {
    let entry = texts.get(id);
    if (entry) return entry;
    const box = el("details", "pnb-pane");
    box.dataset.step = id;
    const head = el("summary", "pnb-pane-head");
    const body = el("div", "pnb-text");
    const more = el("button", "pnb-more", "↓ latest");
    more.type = "button";
    more.hidden = true;
    box.append(head, body, more);
    entry = { box, head, body, more, user: false };
    // A pane the user opened or closed stays that way; the view only moves the others.
    head.addEventListener("click", () => { entry.user = true; });
    box.addEventListener("toggle", () => { if (box.open) follow(entry); });
    body.addEventListener("scroll", () => {
      body.classList.toggle("pnb-scrolled", body.scrollTop > 0);
      if (body.scrollHeight - body.scrollTop - body.clientHeight < FOLLOW_SLACK) entry.more.hidden = true;
    });
    more.addEventListener("click", () => follow(entry));
    const rank = order(id);
    const after = [...texts.entries()].find(([other]) => order(other) > rank);
    panes.insertBefore(box, after ? after[1].box : null);
    texts.set(id, entry);
    dress(id, entry);
    arrange();
    return entry;
  }

  // The pane's head and colours follow its row: "◐ b · running · 12 tok".
  function dress(id, entry) {
    const row = rowFor(id);
    const state = row ? (row.id === id ? row.status : row.status === "running" ? "running" : row.status) : "running";
    entry.box.dataset.status = state;
    entry.box.className = "pnb-pane pnb-" + state;
    const parts = [id, state];
    if (row && row.id === id && row.tokens && state !== "running") parts.push(tokens(row.tokens));
    entry.head.replaceChildren(el("span", "pnb-icon", ICON[state] || "?"), el("span", "pnb-pane-title", parts.join(" · ")));
  }

  // Open the running steps' panes and close the rest; with none running, open the latest.
  // A pane the user opened or closed is left alone.
  function arrange() {
    const entries = [...texts.values()];
    const running = model.get("rows").some((r) => r.status === "running");
    const latest = entries.filter((e) => !e.user).pop();
    for (const e of entries) {
      if (!e.user) e.box.open = e.box.dataset.status === "running" || (!running && e === latest);
    }
  }

  function drawRows() {
    const rows = model.get("rows");
    const now = Date.now();
    table.replaceChildren();
    cells.clear();
    for (const row of rows) {
      const tr = el("tr", "pnb-row pnb-" + row.status);
      tr.dataset.step = row.id;
      tr.dataset.status = row.status;
      const tok = el("td", "pnb-tokens", tokens(row.tokens));
      const time = el("td", "pnb-time", elapsed(row, now));
      tr.append(
        icon(row.status),
        el("td", "pnb-id", row.id),
        el("td", "pnb-status", row.status),
        el("td", "pnb-model", row.model || ""),
        tok, time,
        el("td", "pnb-note", row.note || ""),
      );
      table.append(tr);
      cells.set(row.id, { row, tokens: tok, time });
    }
    title.textContent = model.get("title");
    status.textContent = rows.length ? summary(rows) : "";
    root.dataset.status = rows.some((r) => r.status === "running") ? "running" : "idle";
    for (const [id, entry] of texts) dress(id, entry);
    arrange();
  }

  function onMessage(msg) {
    if (msg.r !== undefined) {
      const entry = pane(msg.r);
      entry.body.textContent = "";
      follow(entry);
      return;
    }
    if (msg.a === undefined) return;
    const entry = pane(msg.a);
    const body = entry.body;
    const atEnd = body.scrollHeight - body.scrollTop - body.clientHeight < FOLLOW_SLACK;
    body.append(document.createTextNode(msg.t));
    if (atEnd) follow(entry);
    else if (entry.box.open) entry.more.hidden = false; // the user scrolled up to read: leave them there
    const cell = cells.get(msg.a);
    if (cell) cell.tokens.textContent = tokens(msg.n);
  }

  const tick = setInterval(() => {
    const now = Date.now();
    for (const { row, time } of cells.values()) if (row.status === "running") time.textContent = elapsed(row, now);
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
