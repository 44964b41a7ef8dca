// The kiosk screen: it shows each outcome vaorad pushes over server-sent events, then returns to "please scan".
// The server decides every word; this page only places them, always as text (textContent), never as HTML.
// For each live outcome it records the time from the decision to the frame that shows it (window.__vaoraLatency).
"use strict";

const FIELDS = ["icon", "word", "headline", "detail", "name", "direction", "time", "kind", "message"];
let shown = -1;   // seq of the outcome on screen (or last shown)
let idleTimer = 0;
let idleDir = ""; // a toggle device's direction, shown under "please scan"
window.__vaoraLatency = [];  // {seq, ms}: paint time − decision time, both on this machine's clock
window.__vaoraShown = 0;     // seq of the last outcome painted

function el(id) { return document.getElementById(id); }

function idle() {
  clearTimeout(idleTimer);
  document.body.dataset.screen = "idle";
  el("result").hidden = true;
  el("idle").hidden = false;
  el("idle-direction").textContent = idleDir ? "⇄ " + idleDir : "";
  for (const f of FIELDS) el(f).textContent = "";
}

function apply(v) {
  if (typeof v.seq !== "number" || v.seq < shown) return;  // an older state (a slow /state answer)
  shown = v.seq;
  idleDir = v.idle_direction || "";
  if (v.screen === "idle" || !(v.idle_in_ms > 0)) { idle(); return; }
  clearTimeout(idleTimer);
  el("icon").textContent = v.icon;
  el("word").textContent = v.word;
  el("headline").textContent = v.headline;
  el("detail").textContent = v.detail;
  el("detail").className = "detail" + (v.recorded || v.screen === "direction" ? "" : " not-recorded");
  el("name").textContent = v.name;
  el("direction").textContent = v.direction;
  el("time").textContent = v.time;
  el("kind").textContent = v.kind;
  el("message").textContent = v.message;
  document.body.dataset.screen = v.screen;
  el("idle").hidden = true;
  el("result").hidden = false;
  idleTimer = setTimeout(idle, v.idle_in_ms);
  if (!v.replay) painted(v);
}

// After the frame that draws the change: requestAnimationFrame runs just before that frame's paint, and a message
// posted from it runs just after.
function painted(v) {
  requestAnimationFrame(() => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      const now = performance.timeOrigin + performance.now();
      const lat = window.__vaoraLatency;
      lat.push({ seq: v.seq, ms: now - v.at_ms });
      if (lat.length > 1000) lat.shift();
      window.__vaoraShown = v.seq;
    };
    ch.port2.postMessage(0);
  });
}

function online(on) {
  el("offline").hidden = on;
}

function connect() {
  const es = new EventSource("events");
  es.onopen = () => online(true);
  es.addEventListener("outcome", (e) => {
    try { apply(JSON.parse(e.data)); } catch (err) { console.error("kiosk: bad event", err); }
  });
  es.onerror = () => {
    online(false);
    // EventSource retries by itself after a dropped stream, but gives up on an HTTP error (503: too many screens).
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      setTimeout(connect, 3000);
    }
  };
}

fetch("state", { cache: "no-store" })
  .then((r) => r.json())
  .then(apply)
  .catch(() => {});  // the stream sends the state too
connect();
