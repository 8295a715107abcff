// The dashboard: what GET /api/events pushes (server-sent events, read with fetch so that
// the admin token can go in a header when reads need it), shown as tables and small
// canvas charts; with the admin token (kept in this tab's sessionStorage only), a kick
// button per client and a form for max_clients, through the admin API.
// Everything from the server is put on the page with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "ackchat-admin-token";
const CHART_SECONDS = 600;   // the charts show the last ten minutes
const RETRY_AFTER = 2000;    // ms before the feed is opened again after it broke
const $ = (id) => document.getElementById(id);
const rows = new Map();      // client name -> its table row, kept from update to update
let samples = [];            // [time, lines per second, connected, turned away per second]
let feed = null;             // the AbortController of the open feed
let retry = 0;
let query = "";
let searching = 0;
let shownAt = "";            // when the figures shown were taken (HH:MM:SS)
let chartedUpTo = null;      // the newest sample the charts show
const shownParts = new Map(); // part of the page -> the JSON of what it shows now

// Whether ``value`` differs from what ``part`` shows: an update rebuilds only what changed,
// which keeps the browser's work small when updates come four times a second.
function changed(part, value) {
  const text = JSON.stringify(value);
  if (shownParts.get(part) === text) return false;
  shownParts.set(part, text);
  return true;
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
const authorization = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

function setLive(text, kind) {
  $("live").textContent = text;
  $("live").dataset.kind = kind;
}

function result(text, ok) {
  $("result").textContent = text;
  $("result").dataset.kind = ok ? "up" : "down";
}

// Open the feed (again): the updates for the current search, until it breaks.
async function follow() {
  feed?.abort();
  clearTimeout(retry);
  const controller = (feed = new AbortController());
  try {
    const response = await fetch(`/api/events?q=${encodeURIComponent(query)}`, {
      headers: authorization(),
      signal: controller.signal,
    });
    if (response.status === 401) {
      setLive("reads need the admin token: enter it above", "down");
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    setLive("live", "up");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const data = buffer.slice(0, end).split("\n")
          .filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
        buffer = buffer.slice(end + 2);
        if (data) update(JSON.parse(data));
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
  }
  if (feed !== controller) return;
  setLive("disconnected; trying again…", "down");
  retry = setTimeout(follow, RETRY_AFTER);
}

function update(data) {
  // A feed opened again sends the samples the page has already: only newer ones are added.
  const known = samples.length ? samples[samples.length - 1][0] : 0;
  samples = samples.concat(data.samples.filter((sample) => sample[0] > known));
  const newest = samples.length ? samples[samples.length - 1][0] : 0;
  samples = samples.filter((sample) => sample[0] > newest - CHART_SECONDS);
  if (newest !== chartedUpTo) drawCharts();
  if (changed("limits", data.limits)) showLimits(data.limits);
  const field = $("max-clients");
  if (document.activeElement !== field) field.value = data.limits.max_clients;
  // Without Redis the node has no view of the cluster: what is shown stays, marked as
  // old, with the time it was taken.
  document.body.classList.toggle("stale", Boolean(data.error));
  if (data.error) {
    setLive(data.error, "down");
    $("updated").textContent = shownAt ? `as of ${shownAt} (Redis unreachable)` : "";
    return;
  }
  shownAt = data.time.slice(11, 19);
  $("updated").textContent = `updated ${shownAt}`;
  setLive("live", "up");
  $("connected").textContent = data.connected;
  $("max-clients-now").textContent = data.max_clients + (data.over_limit ? " (lowered)" : "");
  $("seen").textContent = data.seen;
  $("rejected").textContent = data.rejected;
  $("dropped").textContent = data.dropped;
  showClients(data.clients, data.connected);
  if (changed("rooms", data.rooms)) showRooms(data.rooms);
  if (changed("departures", data.departures)) showDepartures(data.departures);
}

function idle(seconds) {
  if (seconds === null) return "–";
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h`;
}

function clientRow(name) {
  const row = document.createElement("tr");
  for (let cell = 0; cell < 6; cell++) row.append(document.createElement("td"));
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Kick";
  button.className = "kick";
  button.addEventListener("click", () => kick(name));
  const last = document.createElement("td");
  last.append(button);
  row.append(last);
  row.dataset.name = name;
  return row;
}

// Rows are kept by name and updated in place, so a button is never replaced under the mouse.
function showClients(clients, connected) {
  const body = $("client-rows");
  const shown = new Set();
  clients.shown.forEach((client, index) => {
    shown.add(client.name);
    let row = rows.get(client.name);
    if (!row) rows.set(client.name, (row = clientRow(client.name)));
    const cells = [client.name, client.address, client.node || "–", client.connected_at.slice(11, 19),
      idle(client.idle_seconds), client.rooms.join(" ")];
    cells.forEach((text, cell) => {
      if (row.cells[cell].textContent !== text) row.cells[cell].textContent = text;
    });
    row.cells[3].title = client.connected_at;
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
  });
  for (const [name, row] of rows) {
    if (!shown.has(name)) {
      row.remove();
      rows.delete(name);
    }
  }
  $("clients-count").textContent = `${connected}`;
  let more = "";
  if (clients.matching > clients.shown.length) {
    more = `Showing ${clients.shown.length} of ${clients.matching}${query ? " matching" : ""}: search to narrow.`;
  } else if (query && clients.matching === 0) {
    more = `No connected client matches “${query}”.`;
  }
  $("clients-more").textContent = more;
}

function showLimits(limits) {
  const list = $("limit-list");
  list.replaceChildren();
  for (const [name, value] of Object.entries(limits)) {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = String(value);
    list.append(term, detail);
  }
}

function showRooms(rooms) {
  $("rooms-count").textContent = `${rooms.count}`;
  $("room-list").replaceChildren(...rooms.shown.map((room) => {
    const item = document.createElement("li");
    const title = document.createElement("b");
    title.textContent = `${room.name} (${room.members})`;
    const members = document.createElement("span");
    const more = room.members > room.names.length ? ", …" : "";
    members.textContent = ` ${room.names.join(", ")}${more}`;
    item.append(title, members);
    return item;
  }));
}

function showDepartures(departures) {
  $("departure-list").replaceChildren(...departures.map((gone) => {
    const item = document.createElement("li");
    const when = document.createElement("time");
    when.textContent = gone.disconnected_at.slice(11, 19);
    when.title = gone.disconnected_at;
    const who = document.createElement("b");
    who.textContent = ` ${gone.name} `;
    const why = document.createElement("span");
    why.textContent = gone.reason;
    item.append(when, who, why);
    return item;
  }));
}

// The charts: one line each over the last minutes, drawn by hand on a canvas.
function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((top) => top >= value);
}

function drawChart(canvas, index, label) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const context = canvas.getContext("2d");
  context.scale(ratio, ratio);
  const style = getComputedStyle(canvas);
  const values = samples.map((sample) => sample[index]);
  const top = niceCeiling(Math.max(1, ...values));
  // The last ten minutes, or less while there is less: a minute at least.
  const end = samples.length ? samples[samples.length - 1][0] : 0;
  const span = Math.min(CHART_SECONDS, Math.max(60, samples.length ? end - samples[0][0] : 0));
  const x = (time) => width - ((end - time) / span) * width;
  const y = (value) => height - 12 - (value / top) * (height - 24);
  context.strokeStyle = style.borderColor;
  context.beginPath();
  context.moveTo(0, y(0));
  context.lineTo(width, y(0));
  context.moveTo(0, y(top));
  context.lineTo(width, y(top));
  context.stroke();
  context.fillStyle = style.color;
  context.font = "10px system-ui, sans-serif";
  context.fillText(String(top), 2, y(top) - 2);
  context.fillText(span >= 120 ? `${Math.round(span / 60)} min ago` : `${Math.round(span)} s ago`, 2, height - 1);
  context.textAlign = "right";
  context.fillText("now", width - 2, height - 1);
  context.strokeStyle = style.getPropertyValue("--line");
  context.lineWidth = 1.5;
  context.beginPath();
  samples.forEach((sample, at) => (at ? context.lineTo : context.moveTo).call(context, x(sample[0]), y(sample[index])));
  context.stroke();
  $(label).textContent = values.length ? String(values[values.length - 1]) : "";
}

function drawCharts() {
  chartedUpTo = samples.length ? samples[samples.length - 1][0] : 0;
  drawChart($("chart-lines"), 1, "now-lines");
  drawChart($("chart-connected"), 2, "now-connected");
  drawChart($("chart-rejected"), 3, "now-rejected");
}

// Calls of the admin API with the token; the answer, or null once the refusal is shown.
async function call(method, path, body) {
  if (!token()) {
    result("Enter the admin token first.", false);
    return null;
  }
  try {
    const response = await fetch(path, {
      method,
      headers: { ...authorization(), "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json();
    if (response.ok) return answer;
    result(response.status === 401 ? "Refused: the admin token is wrong." : `Refused: ${answer.error}`, false);
  } catch (error) {
    result(`Failed: ${error.message}`, false);
  }
  return null;
}

async function kick(name) {
  const answer = await call("DELETE", `/api/clients/${encodeURIComponent(name)}`);
  if (answer) result(`Kicked ${answer.kicked}.`, true);
}

$("max-form").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const field = $("max-clients");
  const answer = await call("PATCH", "/api/config", { max_clients: Number(field.value) });
  if (!answer) return;
  const change = answer.changed.max_clients;
  result(change ? `max_clients ${change.from} → ${change.to}` : `max_clients stays at ${answer.limits.max_clients}`, true);
  field.blur();
});

$("token-form").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const value = $("token").value.trim();
  $("token").value = "";
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  showToken();
  follow();
});

$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showToken();
});

function showToken() {
  $("token-state").textContent = token() ? "token set (this tab only)" : "no token: read only";
}

$("search").addEventListener("input", () => {
  clearTimeout(searching);
  searching = setTimeout(() => {
    query = $("search").value.trim();
    follow();
  }, 250);
});

window.addEventListener("resize", drawCharts);
showToken();
follow();
