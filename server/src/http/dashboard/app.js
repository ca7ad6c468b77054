// Arbiter's dashboard: renders /ui/events (server-sent events, read with fetch so that a token
// can go in the Authorization header: EventSource cannot send one). Read-only: nothing here
// changes the arbiter's state. With --auth the token is kept in this tab's sessionStorage only.
"use strict";

const TOKEN_KEY = "arbiter.token";
const STATES = [
  ["up", "up"],
  ["locked", "locked"],
  ["entering", "entering (draining)"],
  ["maintenance", "in maintenance"],
  ["restarting", "restarting"],
  ["settling", "settling"],
  ["down", "down"],
  ["unknown", "unknown"],
];
const STATE_WORDS = Object.fromEntries(STATES);

let current = null;      // the last state received
let clockOffset = 0;     // server time minus local time, in ms
let hovered = null;      // id of the node under the pointer (or focused)
let pinned = null;       // id of the node clicked
let lastEvent = 0;       // local time of the last event
let aborter = null;

const $ = (id) => document.getElementById(id);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

// ----- time -----------------------------------------------------------------------------

function serverNow() { return Date.now() + clockOffset; }

function fmtDuration(ms) {
  const neg = ms < 0;
  let s = Math.round(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s %= 86400;
  const hh = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  let out;
  if (d) out = `${d}d ${hh}h`;
  else if (hh) out = `${hh}h ${m}m`;
  else if (m) out = `${m}m ${s}s`;
  else out = `${s}s`;
  return neg ? out + " ago" : "in " + out;
}

function countdown(ms) {
  const left = ms - serverNow();
  return h("span", { class: "countdown" + (left < 5 * 60000 ? " soon" : ""), "data-at": ms },
    `(${fmtDuration(left)})`);
}

function tickCountdowns() {
  for (const el of document.querySelectorAll(".countdown[data-at]")) {
    const left = Number(el.dataset.at) - serverNow();
    el.textContent = `(${fmtDuration(left)})`;
    el.classList.toggle("soon", left < 5 * 60000);
  }
  if (current) $("clock").textContent = new Date(serverNow()).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  const live = $("live");
  if (live.classList.contains("on") && Date.now() - lastEvent > 12000) {
    live.className = "live stale"; live.textContent = "stale";
  }
}

// ----- rendering ------------------------------------------------------------------------

function renderBanners(s, error) {
  const b = $("banners");
  b.replaceChildren();
  if (error) b.append(h("div", { class: "banner error" }, h("b", {}, "Not live:"), error));
  if (s.read_only) {
    b.append(h("div", { class: "banner readonly" }, h("b", {}, "Read-only mode."),
      `Turned on by ${s.read_only.by} since ${s.read_only.since}: ${s.read_only.reason}. Nothing is granted or changed until it is turned off.`));
  }
  for (const f of s.freezes) {
    b.append(h("div", { class: "banner freeze" }, h("b", {}, "Freeze:"),
      `${f.scope} is frozen by ${f.by} since ${f.since} for '${f.reason}', ` +
      (f.until ? `until ${f.until} ` : "until lifted"),
      f.until ? countdown(Date.parse(f.until)) : null));
  }
  for (const w of s.windows) {
    const when = w.open ? `open until ${w.local || w.open_until}` :
      (w.next_open ? `closed; opens ${w.local || w.next_open}` : "closed; does not open in the next two years");
    const at = w.open ? w.open_until : w.next_open;
    b.append(h("div", { class: "banner window" + (w.open ? "" : " closed") },
      h("b", {}, `Window ${w.name}:`),
      `${when} `, at ? countdown(Date.parse(at)) : null,
      ` — ${w.schedule} ${w.zone}, ${w.scope}${w.cut ? ", locks end with it" : ""}`));
  }
}

function renderSummary(s) {
  const counts = {};
  for (const n of s.nodes) counts[n.display] = (counts[n.display] || 0) + 1;
  const waiting = s.tasks.filter((t) => t.status !== "granted").length;
  const parts = [h("b", {}, s.nodes.length), " nodes"];
  for (const [k, label] of STATES) {
    if (k !== "up" && counts[k]) parts.push(" · ", h("b", {}, counts[k]), " " + label);
  }
  parts.push(" · ", h("b", {}, s.tasks.length), " tasks", waiting ? [" (", h("b", {}, waiting), " waiting)"] : "");
  $("summary").replaceChildren(...parts.flat());
}

function renderLegend() {
  $("legend").replaceChildren(...STATES.map(([k, label]) =>
    h("li", { "data-state": k }, h("span", { class: "swatch s-" + k }), label)),
  h("li", { class: "extra" }, h("span", { class: "badge sample" }, "2"), "tasks wait for it"),
  h("li", { class: "extra" }, h("span", { class: "disk sample" }), "disk lock"));
}

function groupNodes(nodes) {
  const dcs = new Map();
  for (const n of nodes) {
    const dc = n.dc || "no data center";
    const rack = [n.module, n.rack].filter(Boolean).join(" / ") || "no rack";
    if (!dcs.has(dc)) dcs.set(dc, new Map());
    const racks = dcs.get(dc);
    if (!racks.has(rack)) racks.set(rack, []);
    racks.get(rack).push(n);
  }
  return dcs;
}

function renderNodes(s) {
  const out = [];
  for (const [dc, racks] of groupNodes(s.nodes)) {
    const rackEls = [];
    for (const [rack, nodes] of racks) {
      rackEls.push(h("div", { class: "rack" }, h("h4", {}, rack),
        h("div", { class: "tiles" }, nodes.map(tile))));
    }
    const frozen = s.freezes.some((f) => f.kind === "cluster" || (f.kind === "data_center" && f.name === dc));
    out.push(h("div", { class: "dc" + (frozen ? " frozen" : ""), "data-dc": dc },
      h("h3", {}, dc, frozen ? h("span", { class: "chip hold" }, "frozen") : null),
      h("div", { class: "racks" }, rackEls)));
  }
  $("nodes").replaceChildren(...out);
}

function tile(n) {
  const el = h("div", {
    class: `tile s-${n.display}` + (pinned === n.id ? " pinned" : ""),
    id: "node-" + n.id, tabindex: 0, "data-node": n.id, "data-state": n.display,
    "aria-label": `node ${n.id} ${n.host}: ${STATE_WORDS[n.display]}` + (n.lock ? `, locked by ${n.lock.task}` : ""),
  },
  h("span", { class: "nid" }, n.id),
  h("span", { class: "host" }, n.host.split(".")[0]),
  n.waiting.length ? h("span", { class: "badge" }, n.waiting.length) : null,
  n.disk_locks.length ? h("span", { class: "disk" }) : null);
  el.addEventListener("mouseenter", () => { hovered = n.id; showTip(el); });
  el.addEventListener("mouseleave", () => { hovered = null; showTip(null); });
  el.addEventListener("focus", () => { hovered = n.id; showTip(el); });
  el.addEventListener("blur", () => { hovered = null; showTip(null); });
  el.addEventListener("click", (e) => {
    e.stopPropagation();
    pinned = pinned === n.id ? null : n.id;
    for (const t of document.querySelectorAll(".tile.pinned")) t.classList.remove("pinned");
    if (pinned !== null) el.classList.add("pinned");
    showTip(el);
  });
  return el;
}

function nodeDetails(n) {
  const rows = [["state", STATE_WORDS[n.display] + (n.display !== n.condition ? ` (${n.condition})` : "")]];
  rows.push(["host", `${n.host}:${n.port}`]);
  rows.push(["location", [n.dc, n.module, n.rack, n.unit].filter(Boolean).join(" / ") || "—"]);
  if (n.tenant) rows.push(["tenant", n.tenant]);
  if (n.lock) {
    rows.push(["locked by", `task ${n.lock.task}` + (n.lock.owner ? ` (owner ${n.lock.owner})` : "")]);
    if (n.lock.description) rows.push(["task says", n.lock.description]);
    rows.push(["deadline", [n.lock.deadline + " ", countdown(n.lock.deadline_ms)]]);
  }
  for (const d of n.disk_locks) rows.push(["disk lock", `${d.disk} by task ${d.task} until ${d.deadline}`]);
  if (n.detail) rows.push(["why unavailable", n.detail]);
  else if (!n.available && !n.lock) rows.push(["why unavailable", STATE_WORDS[n.display]]);
  if (n.waiting.length) rows.push(["waiting for it", n.waiting.join(", ")]);
  if (n.window) {
    rows.push(["windows", `${n.window.names.join(", ")}: ` +
      (n.window.open ? `open until ${n.window.local || "?"}` : (n.window.local ? `closed, opens ${n.window.local}` : "closed"))]);
  }
  rows.push(["agent", n.monitored ? `heartbeats, last ${n.last_heartbeat || "not since this server started"}` : "none (not monitored)"]);
  if (n.up_since) rows.push(["up since", n.up_since]);
  if (n.version) rows.push(["version", n.version]);
  return [h("h5", {}, `Node ${n.id}`), h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))];
}

function showTip(anchor) {
  const tip = $("tooltip");
  const id = hovered !== null ? hovered : pinned;
  const n = current && id !== null ? current.nodes.find((x) => x.id === id) : null;
  if (!n) { tip.hidden = true; return; }
  anchor = anchor || $("node-" + n.id);
  tip.replaceChildren(...nodeDetails(n));
  tip.hidden = false;
  if (anchor) {
    const r = anchor.getBoundingClientRect();
    const w = tip.offsetWidth, ht = tip.offsetHeight;
    let x = r.right + 8, y = r.top;
    if (x + w > window.innerWidth - 4) x = Math.max(4, r.left - w - 8);
    if (y + ht > window.innerHeight - 4) y = Math.max(4, window.innerHeight - ht - 4);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
}

function renderTasks(s) {
  const rows = [];
  for (const t of s.tasks) {
    const statusClass = t.status === "partly granted" ? "partly" : t.status;
    t.actions.forEach((a, i) => {
      const first = i === 0;
      const span = t.actions.length;
      const cells = [];
      if (first) {
        cells.push(h("td", { class: "uid", rowspan: span }, t.uid, t.description ? h("span", { class: "desc" }, t.description) : null));
        cells.push(h("td", { rowspan: span }, t.owner));
        cells.push(h("td", { rowspan: span }, `${t.priority} / ${t.mode}`, t.override_holds ? h("span", { class: "desc" }, "overrides holds") : null));
        cells.push(h("td", { rowspan: span }, h("span", { class: "chip " + statusClass }, t.status),
          t.retry_after ? h("span", { class: "desc" }, "retry after " + t.retry_after) : null));
      }
      cells.push(h("td", { class: "scope" }, a.scope));
      const word = { performed: "locked", in_progress: "draining" }[a.state] || "pending";
      cells.push(h("td", {}, h("span", { class: "chip " + a.state }, word),
        a.hold ? h("span", { class: "chip hold" }, a.hold) : null));
      if (a.state === "performed" || a.state === "in_progress") {
        const until = a.deadline ? ["until " + a.deadline + " ", countdown(Date.parse(a.deadline))] : ["until completed"];
        cells.push(h("td", { class: "why" }, ...until, a.details ? h("span", { class: "details" }, a.details) : null));
      } else {
        cells.push(h("td", { class: "why" }, h("span", { class: "reason" }, a.reason_text),
          h("span", { class: "mono desc" }, a.reason), a.details ? h("span", { class: "details" }, a.details) : null));
      }
      rows.push(h("tr", { class: first ? "first" : "", "data-task": t.uid, "data-action": a.id }, cells));
    });
  }
  $("tasks").tBodies[0].replaceChildren(...rows);
  $("tasks").hidden = s.tasks.length === 0;
  $("no-tasks").hidden = s.tasks.length !== 0;
  $("task-count").textContent = s.tasks.length ? `(${s.tasks.length})` : "";
}

function renderAudit(s) {
  const rows = s.audit.map((e) => h("tr", { "data-seq": e.seq },
    h("td", { class: "mono" }, e.seq),
    h("td", { class: "mono" }, e.time.replace("T", " ").replace("Z", "")),
    h("td", {}, e.kind.replaceAll("_", " "), e.force ? h("span", { class: "chip hold" }, "force") : null),
    h("td", {}, e.user, e.role ? h("span", { class: "desc" }, e.role) : null),
    h("td", { class: "uid" }, e.task),
    h("td", {}, e.nodes.join(", ")),
    h("td", {}, e.detail)));
  $("audit").tBodies[0].replaceChildren(...rows);
  $("audit").hidden = s.audit.length === 0;
  $("no-audit").hidden = s.audit.length !== 0;
}

function render(s, error) {
  current = s;
  clockOffset = s.now_ms - Date.now();
  renderSummary(s);
  renderBanners(s, error);
  renderNodes(s);
  renderTasks(s);
  renderAudit(s);
  showTip(null);
  tickCountdowns();
  document.body.dataset.updated = String(s.now_ms);
}

// ----- the live stream ------------------------------------------------------------------

function setLive(cls, text) {
  const el = $("live");
  el.className = "live " + cls;
  el.textContent = text;
}

function askToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  $("login-token").focus();
}

async function stream() {
  let backoff = 500;
  for (;;) {
    aborter = new AbortController();
    try {
      const res = await fetch("/ui/events", { headers: headers(), cache: "no-store", signal: aborter.signal });
      if (res.status === 401 || res.status === 403) {
        const body = await res.json().catch(() => ({}));
        setLive("off", "needs a token");
        askToken(token() ? (body.message || "that token was refused") : "");
        return;
      }
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.message || `HTTP ${res.status}`);
      }
      $("login").hidden = true;
      $("forget").hidden = !token();
      backoff = 500;
      await readEvents(res.body.getReader());
      throw new Error("the stream ended");
    } catch (e) {
      if (e.name === "AbortError") e = new Error("no update for a while");
      setLive("off", "reconnecting");
      renderBanners(current || { read_only: null, freezes: [], windows: [] }, `${e.message}; reconnecting`);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10000);
    }
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
      lastEvent = Date.now();
      if (event === "state" && data.length) {
        setLive("on", "live");
        render(JSON.parse(data.join("\n")), null);
      } else if (event === "error" && data.length) {
        const body = JSON.parse(data.join("\n"));
        throw new Error(body.message || body.code);
      }
    }
  }
}

// A stream that stays silent (a proxy that buffers, a dead connection) is dropped and reopened.
setInterval(() => {
  tickCountdowns();
  if (aborter && lastEvent && Date.now() - lastEvent > 20000) { lastEvent = Date.now(); aborter.abort(); }
}, 1000);

document.addEventListener("DOMContentLoaded", () => {
  renderLegend();
  document.addEventListener("click", () => { if (pinned !== null && current) { pinned = null; showTip(null); renderNodes(current); } });
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("login-token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("login-token").value = "";
    $("login").hidden = true;
    stream();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    if (aborter) aborter.abort();
    location.reload();
  });
  stream();
});
