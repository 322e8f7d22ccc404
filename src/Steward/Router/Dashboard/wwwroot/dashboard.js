// Steward dashboard: renders the router's snapshot (server-sent events from /dashboard/events, or polling
// /dashboard/state.json every 500 ms while the event stream is down). Plain JS, no dependencies.
"use strict";

const colors = ["#2563eb", "#d97706", "#059669", "#c026d3", "#dc2626", "#0891b2"];
let latest = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function bytes(n) {
  if (n == null) return "unknown";
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(1) + " " + units[i];
}

function badge(text, cls) { return el("span", { class: "badge " + (cls || text) }, text); }

function renderMembers(s) {
  const body = document.querySelector("#members tbody");
  body.replaceChildren(...s.members.map(m => {
    const leader = m.role === "leader";
    const state = m.replication_state || m.state || "";
    return el("tr", { class: leader ? "leader" : "", "data-member": m.name, "data-role": m.role },
      el("td", {}, leader ? el("span", { class: "star", title: "leader" }, "★") : ""),
      el("td", {}, m.name),
      el("td", {}, m.host || ""),
      el("td", {}, badge(m.role), m.sync_standby ? " " : "", m.sync_standby ? badge("sync standby", "sync") : ""),
      el("td", {}, badge(state, state === "running" || state === "streaming" ? "ok" : "bad")),
      el("td", {}, m.timeline ?? ""),
      el("td", { title: m.lag_bytes == null ? "" : m.lag_bytes + " bytes" }, leader ? "" : bytes(m.lag_bytes)),
      el("td", {}, leader ? "" : m.lag_seconds == null ? "unknown" : m.lag_seconds.toFixed(1)),
      el("td", {}, leader ? "" : m.readable ? badge("yes", "ok") : badge("no", "bad")));
  }));
}

function renderSwitchover(s) {
  const select = document.getElementById("candidate");
  const replicas = s.members.filter(m => m.role !== "leader").map(m => m.name);
  const current = [...select.options].map(o => o.value);
  if (current.join() !== replicas.join()) {
    const keep = select.value;
    select.replaceChildren(...replicas.map(r => el("option", { value: r }, r)));
    if (replicas.includes(keep)) select.value = keep;
  }
  const disabled = document.getElementById("switchover-disabled");
  const enabled = s.switchover.enabled;
  disabled.hidden = enabled;
  disabled.textContent = enabled ? "" : s.switchover.message;
  for (const id of ["candidate", "username", "password", "switchover-button"]) {
    document.getElementById(id).disabled = !enabled || !s.leader || replicas.length === 0;
  }
}

function renderListeners(s) {
  const rows = [];
  for (const l of s.listeners) {
    const sum = k => l.backends.reduce((a, b) => a + b[k], 0);
    rows.push(el("tr", { "data-listener": l.name },
      el("td", {}, el("b", {}, l.name)), el("td", {}, l.address), el("td", {}, badge(l.state)),
      el("td", {}, l.current_sessions), el("td", {}, l.total_sessions), el("td", {}, l.holding), el("td", {}, l.errors),
      el("td", {}, bytes(sum("bytes_in"))), el("td", {}, bytes(sum("bytes_out")))));
    for (const b of l.backends) {
      rows.push(el("tr", { class: "backend" },
        el("td", {}, b.name), el("td", {}, ""), el("td", {}, badge(b.state)),
        el("td", {}, b.current_sessions), el("td", {}, b.total_sessions), el("td", {}, ""), el("td", {}, b.connect_errors),
        el("td", {}, bytes(b.bytes_in)), el("td", {}, bytes(b.bytes_out))));
    }
  }
  document.querySelector("#listeners tbody").replaceChildren(...rows);
}

// PgBouncers this router pauses around a planned switchover (router.yml pgbouncer:); the card stays hidden without them.
function renderPgBouncers(s) {
  const list = s.pgbouncers || [];
  document.getElementById("pgbouncers-card").hidden = list.length === 0;
  const cls = state => state === "resumed" ? "ok" : state === "unreachable" ? "bad" : "warn";
  document.querySelector("#pgbouncers tbody").replaceChildren(...list.map(b => el("tr", { "data-pgbouncer": b.address, "data-state": b.state },
    el("td", {}, b.address), el("td", {}, badge(b.state, cls(b.state))), el("td", {}, b.detail || ""),
    el("td", {}, b.last_pause_ms == null ? "" : b.last_pause_ms + " ms"),
    el("td", {}, b.last_pause_at ? new Date(b.last_pause_at).toLocaleString() : ""), el("td", {}, b.pauses))));
}

function renderHistory(s) {
  const body = document.querySelector("#history tbody");
  if (s.history.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 5 }, "no failover or switchover yet")));
    return;
  }
  body.replaceChildren(...s.history.map(h => el("tr", { "data-timeline": h.timeline },
    el("td", {}, h.timeline + " → " + (h.timeline + 1)), el("td", {}, h.lsn), el("td", {}, h.reason),
    el("td", {}, new Date(h.time).toLocaleString()), el("td", {}, h.new_leader || ""))));
}

// One line per series over the sample window, drawn into an inline SVG.
function drawChart(svgId, legendId, samples, pick, format) {
  const svg = document.getElementById(svgId);
  const names = [...new Set(samples.flatMap(p => Object.keys(pick(p))))].sort();
  const W = 400, H = 110, pad = 4;
  const t0 = samples.length ? samples[0].t : 0, t1 = samples.length ? samples[samples.length - 1].t : 1;
  const max = Math.max(1, ...samples.flatMap(p => Object.values(pick(p)).filter(v => v != null)));
  const x = t => pad + (W - 2 * pad) * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
  const y = v => H - pad - (H - 2 * pad) * v / max;
  const ns = "http://www.w3.org/2000/svg";
  const lines = names.map((n, i) => {
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("fill", "none");
    pl.setAttribute("stroke", colors[i % colors.length]);
    pl.setAttribute("stroke-width", "1.5");
    pl.setAttribute("vector-effect", "non-scaling-stroke");
    pl.setAttribute("points", samples.filter(p => pick(p)[n] != null).map(p => x(p.t).toFixed(1) + "," + y(pick(p)[n]).toFixed(1)).join(" "));
    return pl;
  });
  svg.replaceChildren(...lines);
  const last = samples.length ? pick(samples[samples.length - 1]) : {};
  const minutes = samples.length > 1 ? Math.round((t1 - t0) / 1000) + " s" : "";
  document.getElementById(legendId).replaceChildren(
    ...names.map((n, i) => el("span", {}, el("i", { style: "background:" + colors[i % colors.length] }), n + (n in last ? " " + format(last[n]) : ""))),
    el("span", {}, "max " + format(max) + (minutes ? " · last " + minutes : "")));
}

function render(s) {
  latest = s;
  document.getElementById("scope").textContent = s.scope;
  const summary = s.leader ? "leader " + s.leader : "no leader";
  const pending = s.failover ? " · switchover to " + (s.failover.candidate || "any replica") + " pending" : "";
  const writes = s.writer ? "writes → " + s.writer : "writes held (" + (s.reason || "no writer") + ")";
  document.getElementById("summary").textContent = summary + " · " + writes + pending + (s.paused ? " · PAUSED" : "");
  document.body.dataset.leader = s.leader || "";
  renderMembers(s);
  renderSwitchover(s);
  renderListeners(s);
  renderPgBouncers(s);
  renderHistory(s);
  drawChart("lag-chart", "lag-legend", s.samples, p => p.lag, v => "lag " + bytes(v));
  drawChart("sessions-chart", "sessions-legend", s.samples, p => p.sessions, v => (v ?? 0) + " sessions");
}

function setConnection(text, cls) {
  const c = document.getElementById("connection");
  c.textContent = text;
  c.className = "conn " + cls;
}

let pollTimer = null;
function startPolling() {
  if (pollTimer) return;
  pollTimer = setInterval(async () => {
    try {
      const r = await fetch("/dashboard/state.json", { cache: "no-store" });
      render(await r.json());
      setConnection("polling", "live");
    } catch (e) {
      setConnection("router unreachable", "down");
    }
  }, 500);
}
function stopPolling() { clearInterval(pollTimer); pollTimer = null; }

function connect() {
  if (!window.EventSource) { startPolling(); return; }
  const events = new EventSource("/dashboard/events");
  events.onmessage = e => { stopPolling(); setConnection("live", "live"); render(JSON.parse(e.data)); };
  events.onerror = () => { setConnection("reconnecting…", "down"); startPolling(); };
}

document.getElementById("switchover").addEventListener("submit", async e => {
  e.preventDefault();
  const result = document.getElementById("switchover-result");
  const candidate = document.getElementById("candidate").value;
  const auth = btoa(unescape(encodeURIComponent(document.getElementById("username").value + ":" + document.getElementById("password").value)));
  result.className = "result";
  result.textContent = "switching over to " + candidate + "…";
  document.getElementById("switchover-button").disabled = true;
  try {
    const r = await fetch("/dashboard/switchover", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Basic " + auth },
      body: JSON.stringify({ candidate }),
    });
    const text = await r.text();
    result.className = "result " + (r.ok ? "ok" : "bad");
    result.textContent = r.status + ": " + text;
  } catch (err) {
    result.className = "result bad";
    result.textContent = "request failed: " + err;
  } finally {
    if (latest) renderSwitchover(latest);
  }
});

connect();
