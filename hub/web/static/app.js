// The hub's live entry list: it asks the API for the newest entries whenever the server says a batch was committed
// (server-sent events), and every 10 s in case the stream is down. Only the masked view is ever served.
"use strict";

const DIRECTIONS = { in: "Vào · In", out: "Ra · Out" };
const KINDS = { cccd: "CCCD", covid_app: "PC-Covid", bhyt: "BHYT", vaora_pass: "vaora pass", other: "Khác · Other" };
const STATES = { green: "Xanh · Green", amber: "Vàng · Amber", blue: "Lam · Blue", red: "Đỏ · Red" };
const TIME_NOTES = {
  rebased: ["rebased", " (giờ đã hiệu chỉnh · time re-based)"],
  "device-unsynced": ["unsynced", " (giờ chưa đồng bộ · clock not synced)"],
};
const seen = new Set();
let first = true;
let inflight = false;
let again = false;

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  return td;
}

function row(e) {
  const tr = document.createElement("tr");
  const key = e.device + "/" + e.epoch + "/" + e.seq;
  tr.dataset.key = key;
  if (!first && !seen.has(key)) tr.className = "fresh";
  seen.add(key);
  // time: the device's clock, or the hub's re-based time for a scan made before the device's clock was set.
  const when = cell(new Date(e.time || e.scanned_at).toLocaleString("vi-VN"));
  const note = TIME_NOTES[e.time_source || (e.clock_synced ? "synced" : "device-unsynced")];
  if (note) {
    const s = document.createElement("span");
    s.className = note[0];
    s.textContent = note[1];
    when.appendChild(s);
  }
  const dir = cell(DIRECTIONS[e.direction] || e.direction);
  if (e.exit_without_entry) {
    const m = document.createElement("span");
    m.className = "noentry";
    m.title = "Không có lượt vào trước đó tại địa điểm này · No entry before this exit at this site";
    m.textContent = " ⚠ chưa có lượt vào · no entry";
    dir.appendChild(m);
  }
  tr.append(when, cell(e.device), dir, cell(KINDS[e.kind] || e.kind));
  const st = cell("");
  const b = document.createElement("span");
  b.className = "badge " + e.state;
  b.textContent = STATES[e.state] || e.state;
  st.appendChild(b);
  tr.append(st, cell(e.masked_name, "name"));
  return tr;
}

async function refresh() {
  try {
    const r = await fetch("/api/entries?limit=100", { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    const tbody = document.querySelector("#entries tbody");
    tbody.replaceChildren(...body.entries.map(row));
    document.getElementById("empty").hidden = body.entries.length > 0;
    document.getElementById("error").hidden = true;
    first = false;
  } catch (err) {
    const el = document.getElementById("error");
    el.textContent = "Không tải được dữ liệu · Could not load entries: " + err.message;
    el.hidden = false;
  }
}

// At most one request at a time: events that arrive meanwhile make one more request when it ends.
function soon() {
  if (inflight) { again = true; return; }
  inflight = true;
  refresh().finally(() => {
    inflight = false;
    if (again) { again = false; soon(); }
  });
}

function live(on) {
  const el = document.getElementById("live");
  el.className = "live " + (on ? "on" : "off");
  document.getElementById("live-text").textContent = on ? "trực tiếp · live" : "đang kết nối lại · reconnecting";
}

function connect() {
  const es = new EventSource("/api/events");
  es.onopen = () => { live(true); soon(); };
  es.addEventListener("entries", soon);
  es.onerror = () => live(false);
}

refresh();
connect();
setInterval(refresh, 10000);
