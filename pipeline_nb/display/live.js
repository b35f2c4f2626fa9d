// pipeline_nb live view: a head line, a row per step, and the streamed text of each step.
// The kernel sends at most one custom message per interval, applied in this order:
//   {owners: {partId: rowId}, reset: [stepId], rewind: [[stepId, callId]], thinking: [[stepId, text, count]],
//    text: [[stepId, text, count, marks?]], tools: [{step, id, ...}], done: [partId]}
// owners names the row of each derived id in the message (an item, a call, a nested step);
// reset clears a pane and its thinking (a retry); rewind clears a pane after a tool call's
// row (a retry in a tool loop: the calls that returned, and all before them, stay); thinking
// and text are appended, so each byte crosses the wire once; count is the pieces received so
// far; marks, when present, are [[offset, n, source]]: a citation mark [n] goes at offset
// (UTF-16 units) of that text; tools are what is new of each tool call (see _tool_rows.py):
// a call that begins has an `at`, the offset of its step's text in this message where its
// row goes (with no text of its step in the message, at the end of the pane); done names
// parts (for_each items, ctx.invoke calls, nested steps) that finished. Rows come as state;
// a row may carry checks, [[name, passed, total]] (a chip each: span.pnb-chip[data-check], red
// once one failed), and combos, a matrix step's comparison {heads, rows} (a tr.pnb-combos under
// the row, holding table.pnb-compare with a tr.pnb-combo[data-status] per combination).
// Rows and panes carry data-step / data-status, which the browser tests read; a row shown
// under its parallel step also carries data-parent. A step's thinking is a
// details.pnb-thinking[data-step] inside its pane (text in .pnb-thinking-text), open while
// Claude thinks and closed once the answer's text begins (unless the reader toggled it);
// a citation mark is a sup.pnb-cite[data-n] inside .pnb-text, its source as the tooltip.
// A tool call is a div.pnb-tool[data-tool=name][data-tool-id][data-round][data-status] inside
// .pnb-text, at its place in the text (data-status running, ok or error; data-server on a
// server tool, tagged span.pnb-tool-tag): its .pnb-tool-head holds .pnb-tool-name, the input
// as it streams in .pnb-tool-args (a click shows it whole) and .pnb-tool-time; once it
// returned, .pnb-tool-output holds the result (a details folded to a few lines when long).
// The code is sent once per kernel (see _widget.py): VERSION (its hash) and CSS (live.css) are
// prepended to this file; the module registers itself in the page under KEY and keeps its text
// in localStorage, so a later view, whose _esm is only the stub (live_stub.js), finds it there.
const KEY = "pipeline_nb.live." + VERSION;
const ICON = { pending: "○", running: "◐", ok: "✓", error: "✗", skipped: "↷", interrupted: "■" };
const FOLLOW_SLACK = 24; // px from the bottom that still counts as "at the bottom"
const KEEP_PARTS = 20; // finished part panes kept in the page; the final rendering has them all
const RESULT_LINES = 3, RESULT_CHARS = 300; // a tool result longer than this is folded to its start

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

function duration(row, now) {
  if (row.duration != null) return seconds(row.duration * 1000);
  if (row.started != null) return seconds(now - row.started);
  return "";
}

function tokens(n) {
  return n ? n.toLocaleString("en") + " tok" : "";
}

// What a reader counts: the top-level steps (a parallel step's children are shown under it).
function summary(all) {
  const rows = all.filter((r) => !r.parent);
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

// A chip per check of a row, with its running count: ✓ contains "Paris" 5/5, ✗ … 2/3.
function chips(checks) {
  const td = el("td", "pnb-checks");
  for (const [name, passed, total] of checks || []) {
    const ok = passed === total;
    const text = `${ok ? "✓" : "✗"} ${name} ${passed}/${total}`;
    const chip = el("span", "pnb-chip pnb-chip-" + (ok ? "pass" : "fail"), text);
    chip.dataset.check = name;
    chip.title = name;
    td.append(chip);
  }
  return td;
}

// A matrix step's comparison, under its row: a row per combination, filled in as they end.
function combos(row) {
  const { heads, rows } = row.combos;
  const at = heads.indexOf("status");
  const table = el("table", "pnb-compare");
  const head = el("tr");
  for (const h of heads) head.append(el("th", "", h));
  table.append(head);
  for (const cells of rows) {
    const tr = el("tr", "pnb-combo pnb-" + cells[at]);
    tr.dataset.status = cells[at];
    cells.forEach((c, i) => tr.append(el("td", i === at ? "pnb-status" : "", c)));
    table.append(tr);
  }
  const tr = el("tr", "pnb-combos");
  tr.dataset.step = row.id;
  const td = el("td");
  td.colSpan = 8;
  td.append(table);
  tr.append(td);
  return tr;
}

function icon(status) {
  const td = el("td", "pnb-icon-cell");
  td.append(el("span", "pnb-icon", ICON[status] || "?"));
  return td;
}

// The CSS goes into the page once (views carry no _css): a later view's stub has none to send.
function style() {
  if (document.getElementById(KEY)) return;
  const node = el("style");
  node.id = KEY;
  node.textContent = CSS;
  document.head.append(node);
}

// Keep this code for a reloaded page or another tab: its stub then needs no kernel (which
// answers no message while a cell runs). Older versions' copies go.
function keep(source) {
  try {
    if (!source || !source.startsWith(`const VERSION="${VERSION}",CSS=`) || localStorage.getItem(KEY) === source) return;
    for (const key of Object.keys(localStorage)) if (key.startsWith("pipeline_nb.live.")) localStorage.removeItem(key);
    localStorage.setItem(KEY, source);
  } catch (e) {
    // no storage (private mode, quota): a stub then asks the kernel
  }
}

// backlog: messages that came while a stub loaded this code, applied once the view is drawn.
function render({ model, el: root }, backlog = []) {
  style();
  keep(model.get("_esm"));
  root.classList.add("pnb-live");
  const head = el("div", "pnb-head");
  const title = el("span", "pnb-title");
  const status = el("span", "pnb-summary");
  const paused = el("span", "pnb-paused");
  head.append(title, status, paused);
  const table = el("table", "pnb-rows");
  const panes = el("div", "pnb-panes");
  root.append(head, table, panes);
  const texts = new Map(); // step id -> {box, head, body, more, user}
  const cells = new Map(); // step id -> {row, tokens, time}
  const finished = []; // part ids that finished, oldest first
  let rows = model.get("rows"); // the latest rows: from a message while running, from state at the end

  // A pane belongs to its row; a derived id (an item, a call, a nested step) to the row the
  // kernel named for it in a message's `owners`: ids are never parsed here.
  const owners = new Map(); // derived id -> the id of its row
  function rowFor(id) {
    const own = owners.get(id) || id;
    return rows.find((row) => row.id === own) || null;
  }

  function order(id) {
    const row = rowFor(id);
    const i = row ? rows.indexOf(row) : -1;
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
    entry = { box, head, body, more, user: false, done: false, thought: null, tools: new Map() };
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

  // The pane's head and colours follow its row: "◐ b · running · 12 tok"; a part that
  // finished while its step runs on is done.
  function dress(id, entry) {
    const row = rowFor(id);
    let state = row ? row.status : "running";
    if (entry.done && state === "running") state = "ok";
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
    const running = rows.some((r) => r.status === "running");
    const latest = entries.filter((e) => !e.user).pop();
    for (const e of entries) {
      if (!e.user) e.box.open = e.box.dataset.status === "running" || (!running && e === latest);
    }
  }

  function depth(row) {
    let n = 0;
    for (let up = row; up && up.parent && n < 16; n++) up = rows.find((r) => r.id === up.parent);
    return n;
  }

  function drawRows() {
    const now = Date.now();
    table.replaceChildren();
    cells.clear();
    for (const row of rows) {
      const tr = el("tr", "pnb-row pnb-" + row.status);
      tr.dataset.step = row.id;
      tr.dataset.status = row.status;
      if (row.parent) {
        tr.dataset.parent = row.parent;
        tr.classList.add("pnb-child");
        tr.style.setProperty("--pnb-depth", depth(row));
      }
      const tok = el("td", "pnb-tokens", tokens(row.tokens));
      const time = el("td", "pnb-time", duration(row, now));
      tr.append(
        icon(row.status),
        el("td", "pnb-id", row.id),
        el("td", "pnb-status", row.status),
        el("td", "pnb-model", row.model || ""),
        tok, time,
        el("td", "pnb-note", row.note || ""),
        chips(row.checks),
      );
      table.append(tr);
      if (row.combos) table.append(combos(row));
      cells.set(row.id, { row, tokens: tok, time });
    }
    title.textContent = model.get("title");
    status.textContent = rows.length ? summary(rows) : "";
    root.dataset.status = rows.some((r) => r.status === "running") ? "running" : "idle";
    for (const [id, entry] of texts) dress(id, entry);
    arrange();
  }

  function reset(id) {
    const entry = pane(id);
    entry.body.textContent = "";
    entry.tools.clear();
    if (entry.thought) entry.thought.box.remove();
    entry.thought = null;
    entry.done = false;
    follow(entry);
  }

  function counted(id, count) {
    const cell = cells.get(id);
    if (cell) cell.tokens.textContent = tokens(count);
  }

  // The step's thinking: a pane of its own above the answer, made on the first thought.
  function thoughtOf(id, entry) {
    if (entry.thought) return entry.thought;
    const box = el("details", "pnb-thinking");
    box.dataset.step = id;
    box.open = true;
    const head = el("summary", "pnb-thinking-head", "thinking");
    const body = el("div", "pnb-thinking-text");
    box.append(head, body);
    const thought = { box, body, user: false };
    head.addEventListener("click", () => { thought.user = true; });
    entry.box.insertBefore(box, entry.body);
    entry.thought = thought;
    return thought;
  }

  function think(id, text, count) {
    const entry = pane(id);
    const body = thoughtOf(id, entry).body;
    const atEnd = body.scrollHeight - body.scrollTop - body.clientHeight < FOLLOW_SLACK;
    body.append(document.createTextNode(text));
    if (atEnd) body.scrollTop = body.scrollHeight;
    counted(id, count);
  }

  // Text, with a citation mark [n] at each mark's offset (after the passage it cites) and the
  // row of each tool call that begins in this message at its offset (marks first at one offset:
  // a cited block ends before the call that follows it begins).
  function write(entry, text, marks, calls) {
    const inserts = [];
    for (const [offset, n, source] of marks || []) {
      const mark = el("sup", "pnb-cite", "[" + n + "]");
      mark.dataset.n = n;
      mark.title = source;
      inserts.push([offset, mark]);
    }
    for (const t of calls || []) if (!entry.tools.has(t.id)) inserts.push([t.at, toolRow(entry, t).box]);
    inserts.sort((a, b) => a[0] - b[0]); // a stable sort
    const body = entry.body;
    let at = 0;
    for (const [offset, node] of inserts) {
      if (offset > at) body.append(document.createTextNode(text.slice(at, offset)));
      at = Math.max(at, offset);
      body.append(node);
    }
    if (at < text.length) body.append(document.createTextNode(text.slice(at)));
  }

  function append(id, text, count, marks, calls) {
    const entry = pane(id);
    const body = entry.body;
    const atEnd = body.scrollHeight - body.scrollTop - body.clientHeight < FOLLOW_SLACK;
    // the answer begins: its thinking folds away (the reader can reopen it)
    if (text && entry.thought && !entry.thought.user) entry.thought.box.open = false;
    if (marks || calls) write(entry, text, marks, calls);
    else body.append(document.createTextNode(text));
    if (atEnd) follow(entry);
    else if (entry.box.open) entry.more.hidden = false; // the user scrolled up to read: leave them there
    counted(id, count);
  }

  // -- tool calls: a row each in its step's pane, at the place in the text where it began --

  function toolRow(entry, t) {
    const box = el("div", "pnb-tool");
    Object.assign(box.dataset, { tool: t.name, toolId: t.id, round: t.round, status: "running" });
    const head = el("div", "pnb-tool-head");
    const icon = el("span", "pnb-tool-icon", "⚙");
    const args = el("span", "pnb-tool-args");
    const time = el("span", "pnb-tool-time");
    head.append(icon, el("span", "pnb-tool-name", t.name));
    if (t.server) {
      box.dataset.server = "";
      head.append(el("span", "pnb-tool-tag", "server"));
    }
    head.append(args, time);
    args.addEventListener("click", () => args.classList.toggle("pnb-open")); // the whole input, wrapped
    box.append(head);
    const row = { box, icon, args, time };
    entry.tools.set(t.id, row);
    return row;
  }

  // The result: as it is when short, else folded to its first lines (a click opens it all).
  function result(text) {
    const lines = text.split("\n");
    if (lines.length <= RESULT_LINES && text.length <= RESULT_CHARS) return el("div", "pnb-tool-output", text);
    const box = el("details", "pnb-tool-output");
    const start = lines.slice(0, RESULT_LINES).join("\n").slice(0, RESULT_CHARS);
    const head = el("summary", "pnb-tool-summary");
    head.append(el("span", "pnb-tool-preview", start + " …"));
    box.append(head, el("div", "pnb-tool-full", text));
    return box;
  }

  function tool(t) {
    const entry = pane(t.step);
    const body = entry.body;
    const atEnd = body.scrollHeight - body.scrollTop - body.clientHeight < FOLLOW_SLACK;
    let row = entry.tools.get(t.id);
    if (!row) {
      row = toolRow(entry, t); // no text of its step in this message: it goes after the text so far
      body.append(row.box);
    }
    if (t.input !== undefined) row.args.textContent = t.input;
    if (t.args) row.args.append(document.createTextNode(t.args));
    if (t.output !== undefined) {
      row.box.dataset.status = t.error ? "error" : "ok";
      if (t.error) row.icon.textContent = "✗";
      row.box.querySelector(":scope > .pnb-tool-output")?.remove();
      row.box.append(result(t.output));
      if (t.note) row.box.append(el("div", "pnb-tool-note", t.note));
    }
    if (t.time != null) row.time.textContent = t.time < 10 ? t.time.toFixed(2) + "s" : seconds(t.time * 1000);
    if (atEnd) follow(entry);
  }

  // A retry in a tool loop: what came after the call's row goes (if its row is not on the page
  // yet, it comes in this message, and so does all that followed it).
  function rewind(id, callId) {
    const entry = texts.get(id);
    const row = entry && entry.tools.get(callId);
    if (!row || row.box.parentNode !== entry.body) return;
    while (row.box.nextSibling) row.box.nextSibling.remove();
    for (const [other, r] of entry.tools) if (r.box.parentNode !== entry.body) entry.tools.delete(other);
    entry.done = false;
    follow(entry);
  }

  // A finished part's pane closes; past KEEP_PARTS the oldest untouched ones leave the page.
  function finish(id) {
    const entry = texts.get(id);
    if (!entry) return;
    entry.done = true;
    dress(id, entry);
    finished.push(id);
    while (finished.length > KEEP_PARTS) {
      const old = finished.shift();
      const gone = texts.get(old);
      if (gone && !gone.user) {
        gone.box.remove();
        texts.delete(old);
      }
    }
  }

  function onMessage(msg) {
    for (const [id, own] of Object.entries(msg.owners || {})) owners.set(id, own);
    for (const id of msg.reset || []) reset(id);
    for (const [id, call] of msg.rewind || []) rewind(id, call);
    for (const [id, text, count] of msg.thinking || []) think(id, text, count);
    const begun = new Map(); // step id -> the tool calls whose rows go in its text in this message
    for (const t of msg.tools || []) {
      if (t.at == null) continue;
      if (!begun.has(t.step)) begun.set(t.step, []);
      begun.get(t.step).push(t);
    }
    for (const [id, text, count, marks] of msg.text || []) append(id, text, count, marks, begun.get(id));
    for (const t of msg.tools || []) tool(t);
    for (const id of msg.done || []) finish(id);
    if (msg.done) arrange();
  }

  function onRows() {
    rows = model.get("rows");
    drawRows();
  }

  function drawPause(now = Date.now()) {
    const pause = model.get("paused") || {};
    const left = Math.ceil(((pause.until || 0) - now) / 1000);
    paused.textContent = left > 0 ? `rate limited · resumes in ${left} s (concurrency ${pause.concurrency})` : "";
  }

  const tick = setInterval(() => {
    const now = Date.now();
    for (const { row, time } of cells.values()) if (row.status === "running") time.textContent = duration(row, now);
    drawPause(now);
  }, 250);

  model.on("change:rows", onRows);
  model.on("change:title", drawRows);
  model.on("change:paused", drawPause);
  model.on("msg:custom", onMessage);
  drawRows();
  for (const msg of backlog) onMessage(msg);
  return () => {
    clearInterval(tick);
    model.off("change:rows", onRows);
    model.off("change:title", drawRows);
    model.off("change:paused", drawPause);
    model.off("msg:custom", onMessage);
  };
}

globalThis[KEY] = { render, keep };
export default { render };
