// The chat page: ackchat's line protocol over a WebSocket (GET /ws), one frame per line.
//
// It follows the protocol as the terminal client does (docs/PROTOCOL.md): the reply to
// each line sent comes in order, blocks end with a lone "." (content lines that start
// with a dot carry one more), other clients' messages arrive as event lines in between.
// After a lost connection it reconnects and sends "/resume <token>".
// Everything from the server is put on the page with textContent, never as HTML.
"use strict";

const AUTH_REQUIRED = "Password required: send 'auth <password>'.";
const EVENT = /^@(\d+) (\S+) (\S+) ([^ :]+): (.*)$/;
const BLOCK_SLASH = new Set(["/status", "/help", "/join", "/rooms", "/members", "/who", "/history", "/resume"]);
const BLOCK_WORDS = new Set(["status", "status all", "help", "who"]);
const COMMANDS = ["/msg", "/all", "/join", "/say", "/leave", "/rooms", "/members", "/who", "/nick",
  "/history", "/resume", "/status", "/help", "/exit", "/quit", "who", "status", "help", "exit"];
const ROOM_COMMANDS = new Set(["/join", "/say", "/leave", "/members", "/history"]);
const MAX_ENTRIES = 1000;      // lines kept on the page; the oldest go first
const GIVE_UP_AFTER = 60000;   // ms of failed reconnecting (the server's resume_grace)

const log = document.getElementById("log");
const form = document.getElementById("composer");
const input = document.getElementById("line");
const stateLabel = document.getElementById("state");
const meLabel = document.getElementById("me");
const hint = document.getElementById("hint");
const reconnectButton = document.getElementById("reconnect");

let ws = null;
let greeted = false;        // the greeting arrived on this connection
let expected = [];          // the lines sent whose reply is due: {text, block}
let block = null;           // the block being read: {lines}
let ended = false;          // the server said goodbye (or refused us): do not reconnect
let draining = false;       // the server asked us to reconnect once our replies are in
let name = "";
let resumeToken = "";       // the token for /resume after a loss ("" before a greeting)
let greetingToken = "";     // this connection's own token
let resuming = false;       // reconnected: send /resume once greeted
let password = null;        // kept in memory only, to answer the prompt after a reconnect
let askingPassword = false;
let lostAt = 0;
let attempt = 0;
const waiting = [];         // lines typed while disconnected: {text, item}
const names = new Set();
const rooms = new Set();
const myRooms = new Set();
const typed = [];
let typedIndex = 0;

// A line of the log: an element of `kind` holding a span for each [class, text] part.
function entry(kind, ...parts) {
  return element("li", kind, parts);
}

function element(tag, kind, parts) {
  const item = document.createElement(tag);
  item.className = kind;
  for (const [cls, text] of parts) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    item.append(span);
  }
  return item;
}

function show(item) {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(item);
  while (log.childElementCount > MAX_ENTRIES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
  return item;
}

// An event line: the time, the scope (a room, direct, all), the sender, the text.
function eventEntry(match, tag = "li") {
  const [, , time, scope, from, text] = match;
  const clock = ["time", time.slice(11, 19)];
  if (from === "*") return element(tag, "event presence", [clock, ["scope", scope], ["text", text]]);
  const kind = scope === "direct" ? "direct" : scope === "all" ? "all" : "room";
  const sender = scope === "direct" ? from.replace(">", " → ") : from;
  return element(tag, `event ${kind}`, [clock, ["scope", scope], ["from", sender], ["text", text]]);
}

function learnEvent(match) {
  const [, , , scope, from, text] = match;
  if (scope.startsWith("#")) rooms.add(scope);
  if (from !== "*") {
    for (const who of from.split(">")) names.add(who);
    return;
  }
  const renamed = text.match(/^(\S+) is now (\S+)$/);
  if (renamed) {
    names.delete(renamed[1]);
    names.add(renamed[2]);
  } else {
    names.add(text.split(" ")[0]);
  }
}

function setName(value) {
  name = value;
  names.delete(value);
  meLabel.textContent = [value, ...myRooms].join(" ");
}

function expectsBlock(text) {
  if (text.startsWith("/")) return BLOCK_SLASH.has(text.split(" ")[0].toLowerCase());
  return text.length <= 32 && BLOCK_WORDS.has(text.trim().toLowerCase().split(/\s+/).join(" "));
}

function endsSession(line) {
  return line.endsWith(" Goodbye.") || line === "Goodbye." || /^Goodbye, \S+\.$/.test(line)
    || line.startsWith("Connection refused: ") || line.endsWith(" Try again later.");
}

// One line from the server.
function receive(line) {
  if (block) return blockLine(line);
  if (!greeted) return beforeGreeting(line);
  const head = expected[0];
  const match = EVENT.exec(line);
  const isOwnAck = head && line === `${head.text} ACK`;
  if (!isOwnAck && match) {
    learnEvent(match);
    return show(eventEntry(match));
  }
  if (!isOwnAck && (line.startsWith("WARNING ") || line.startsWith("Server draining: "))) {
    draining ||= line.startsWith("Server draining: ");
    show(entry("warning", ["text", line]));
    return leaveIfDraining();
  }
  if (!isOwnAck && endsSession(line)) {
    ended = true;
    return show(entry("goodbye", ["text", line]));
  }
  if (!head) return show(entry("notice", ["text", line]));
  expected.shift();
  if (head.block && !line.startsWith("ERROR ")) {
    block = { lines: [line], sent: head.text };
    return;
  }
  replied(head.text, line);
  show(entry(line.startsWith("ERROR ") ? "reply error" : "reply", ["text", line]));
  leaveIfDraining();
}

function beforeGreeting(line) {
  if (line.startsWith("Welcome! You are ")) {
    block = { lines: [line], sent: null };
    return;
  }
  if (line === AUTH_REQUIRED) {
    if (password !== null) return sendAuth(password);
    askPassword(true);
  } else if (line.startsWith("ERROR wrong password")) {
    password = null;
    askPassword(true);
  } else if (endsSession(line)) {
    ended = true;
    askPassword(false);
    return show(entry("goodbye", ["text", line]));
  }
  show(entry(line.startsWith("ERROR ") ? "reply error" : "notice", ["text", line]));
}

function blockLine(line) {
  if (line !== ".") {
    block.lines.push(line.startsWith("..") ? line.slice(1) : line);
    return;
  }
  const { lines, sent } = block;
  block = null;
  const item = document.createElement("li");
  item.className = "block";
  for (const text of lines) {
    const match = EVENT.exec(text);
    if (match) learnEvent(match);
    item.append(match ? eventEntry(match, "div") : element("div", "line", [["text", text]]));
  }
  show(item);
  if (sent === null) greeting(lines);
  else {
    learnBlock(lines);
    replied(sent, lines[0]);
  }
  leaveIfDraining();
}

function greeting(lines) {
  greeted = true;
  askPassword(false);
  setName(lines[0].slice("Welcome! You are ".length, -1));
  greetingToken = (lines.find((text) => text.startsWith("Resume token: ")) || "").slice(14);
  setState("connected", "up");
  if (resuming && resumeToken) send(`/resume ${resumeToken}`);
  else resumeToken = greetingToken;
  resuming = false;
  for (const { text, item } of waiting.splice(0)) send(text, item);
}

function learnBlock(lines) {
  const [header, ...body] = lines;
  if (header.startsWith("who: ")) {
    for (const text of body) {
      const [who, ...theirs] = text.split(" ");
      names.add(who);
      theirs.forEach((room) => rooms.add(room));
    }
  } else if (header.startsWith("rooms: ")) {
    body.forEach((text) => rooms.add(text.split(" ")[0]));
  } else if (header.startsWith("members of ")) {
    body.forEach((text) => names.add(text.split(" ")[0]));
  }
  names.delete(name);
}

// What a reply tells about us: our name, our rooms, a resumed session.
function replied(sent, line) {
  let found;
  if ((found = line.match(/^You are now (\S+)\.$/))) setName(found[1]);
  else if ((found = line.match(/^joined (#\S+): /))) {
    rooms.add(found[1]);
    myRooms.add(found[1]);
    setName(name);
  } else if ((found = line.match(/^left (#\S+)$/))) {
    myRooms.delete(found[1]);
    setName(name);
  } else if ((found = line.match(/^Resumed: you are (\S+) again(?: in ([^;]+))?;/))) {
    resumeToken = sent.split(/\s+/)[1];
    myRooms.clear();
    (found[2] || "").split(", ").filter(Boolean).forEach((room) => myRooms.add(room));
    setName(found[1]);
  } else if (sent.toLowerCase().startsWith("/resume ") && line.startsWith("ERROR ")) {
    show(entry("warning", ["text", `The session could not be resumed; you are ${name} now.`]));
    resumeToken = greetingToken;
  }
}

function leaveIfDraining() {
  if (draining && expected.length === 0 && !block && ws) ws.close(1000);
}

// Send a line, or keep it until the connection is back; `item` is its entry if shown already.
function send(text, item = null) {
  const shown = text.toLowerCase().startsWith("/resume ") ? "/resume …" : text;
  if (!ws || ws.readyState !== WebSocket.OPEN || !greeted) {
    waiting.push({ text, item: item || show(entry("mine waiting", ["text", shown])) });
    return;
  }
  ws.send(text);
  expected.push({ text, block: expectsBlock(text) });
  if (item) item.classList.remove("waiting");
  else show(entry("mine", ["text", shown]));
}

function sendAuth(secret) {
  password = secret;
  ws.send(`auth ${secret}`);
  show(entry("mine", ["text", "auth ••••••"]));
}

function askPassword(on) {
  askingPassword = on;
  input.type = on ? "password" : "text";
  input.placeholder = on ? "Password" : "Type a message or a command (help); Tab completes";
}

function setState(text, kind) {
  stateLabel.textContent = text;
  stateLabel.dataset.kind = kind;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/ws`);
  greeted = false;
  expected = [];
  block = null;
  draining = false;
  reconnectButton.hidden = true;
  setState(resuming ? "reconnecting…" : "connecting…", "wait");
  ws.onmessage = (message) => receive(String(message.data));
  ws.onopen = () => {
    lostAt = 0;
    attempt = 0;
  };
  ws.onclose = lost;
}

function lost() {
  ws = null;
  if (ended) {
    setState("disconnected", "down");
    reconnectButton.hidden = false;
    return;
  }
  lostAt ||= Date.now();
  if (Date.now() - lostAt > GIVE_UP_AFTER) {
    setState("could not reconnect", "down");
    reconnectButton.hidden = false;
    return;
  }
  // 0.5 s, doubling up to 10 s, with jitter; at once after a drain.
  const delay = draining ? 0 : Math.min(10000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
  attempt += 1;
  resuming = resumeToken !== "";
  setState(`connection lost; reconnecting in ${Math.round(delay / 1000)} s`, "wait");
  setTimeout(connect, delay);
}

// Tab completion: command words, names after /msg, rooms after the room commands.
function complete() {
  const value = input.value;
  const words = value.split(" ");
  const last = words[words.length - 1];
  let pool = [];
  if (words.length === 1) pool = COMMANDS;
  else if (words.length === 2 && words[0].toLowerCase() === "/msg") pool = [...names];
  else if (words.length === 2 && ROOM_COMMANDS.has(words[0].toLowerCase())) {
    pool = [...rooms, ...(words[0].toLowerCase() === "/history" ? ["direct"] : [])];
  }
  const found = pool.filter((word) => word.toLowerCase().startsWith(last.toLowerCase())).sort();
  hint.textContent = found.length > 1 ? found.join("  ") : "";
  if (found.length === 0) return;
  let common = found[0];
  for (const word of found) while (!word.startsWith(common)) common = common.slice(0, -1);
  words[words.length - 1] = found.length === 1 ? `${found[0]} ` : common || last;
  input.value = words.join(" ");
}

input.addEventListener("keydown", (key) => {
  if (key.key === "Tab" && input.value && !askingPassword) {
    key.preventDefault();
    complete();
  } else if (key.key === "ArrowUp" && typedIndex > 0) {
    key.preventDefault();
    input.value = typed[--typedIndex];
  } else if (key.key === "ArrowDown" && typedIndex < typed.length) {
    key.preventDefault();
    input.value = typed[++typedIndex] ?? "";
  }
});

form.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const text = input.value;
  input.value = "";
  hint.textContent = "";
  if (askingPassword) {
    if (ws && ws.readyState === WebSocket.OPEN) sendAuth(text);
    return;
  }
  typed.push(text);
  typedIndex = typed.length;
  send(text);
});

reconnectButton.addEventListener("click", () => {
  ended = false;
  resuming = false;
  connect();
});

connect();
