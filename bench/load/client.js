// Players for bench/load.py: one Node process holds many real WebSocket
// players (Python cannot receive ~100,000 deltas/s on the two cores it shares
// with the daemon; Node's ws uses a fraction of one).
//
//   node client.js CONFIG.json
//
// CONFIG: {url, tokens: [[token, active], ...], rate (connections/s),
//          waitForAuth (true: open every socket, then authenticate on "auth"
//          read from stdin), actionInterval (s), initialBodies, seed}
// Every second it prints one JSON line of counters for the last second
// (latency as a sparse histogram of 1 ms buckets), and a last one on SIGTERM.
"use strict";

const fs = require("fs");
const readline = require("readline");
const WebSocket = require("ws");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const now = () => performance.timeOrigin + performance.now();
const RESEARCH = ["orbital_mechanics", "stellar_formation"];

const total = {opened: 0, authed: 0, closed: 0, failed: 0};
let interval = fresh();
const players = [];
const activeGardens = [];
let seed = config.seed || 1;

function fresh() {
  return {
    msgsIn: 0, bytesIn: 0, msgsOut: 0, states: 0, fullSyncs: 0,
    latency: new Map(), errors: {}, closes: {}, types: {},
    handshakeMs: [],
  };
}

function random() { // a small LCG: the same actions in every run
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

function send(player, type, data) {
  if (player.ws.readyState !== WebSocket.OPEN) return;
  player.ws.send(JSON.stringify({type, data, id: ++player.requests}));
  interval.msgsOut += 1;
}

function act(player) {
  const choice = player.actions++ % 4;
  if (choice === 0) send(player, "CreateCelestialBody", {kind: "asteroid"});
  else if (choice === 1) send(player, "StartResearch", {research: RESEARCH[player.actions % 2]});
  else if (choice === 2 && activeGardens.length > 1) {
    let other = activeGardens[Math.floor(random() * activeGardens.length)];
    if (other === player.garden) other = activeGardens[0];
    if (other !== player.garden) {
      player.observing = other;
      send(player, "ObserveGarden", {garden_id: other});
    }
  } else if (player.observing) {
    send(player, "StopObserving", {garden_id: player.observing});
    player.observing = null;
  } else send(player, "Heartbeat", {client_time: now()});
}

function authenticate(player) {
  player.authSent = now();
  send(player, "Authenticate", {token: player.token});
}

function onMessage(player, raw) {
  interval.msgsIn += 1;
  interval.bytesIn += raw.length;
  const message = JSON.parse(raw);
  const type = message.type;
  interval.types[type] = (interval.types[type] || 0) + 1;
  const data = message.data || {};
  if (type === "StateDelta" || type === "FullStateSync") {
    interval.states += 1;
    if (type === "FullStateSync") interval.fullSyncs += 1;
    if (typeof data.server_time === "number") {
      const ms = Math.max(0, Math.round(now() - data.server_time));
      interval.latency.set(ms, (interval.latency.get(ms) || 0) + 1);
    }
  } else if (type === "AuthenticateResponse") {
    total.authed += 1;
    player.garden = data.garden_id;
    interval.handshakeMs.push(now() - player.started);
    if (player.active) {
      activeGardens.push(player.garden);
      send(player, "SetGardenPublic", {public: true});
      // Spend the starting dust: a garden with bodies in orbit from the start.
      for (let i = 0; i < config.initialBodies; i++) {
        send(player, "CreateCelestialBody", {kind: "asteroid"});
      }
      // Spread the actions over the interval so they do not arrive in bursts.
      const period = config.actionInterval * 1000;
      player.timer = setTimeout(function tick() {
        act(player);
        player.timer = setTimeout(tick, period * (0.5 + random()));
      }, period * random());
    }
  } else if (type === "Error") {
    interval.errors[data.code] = (interval.errors[data.code] || 0) + 1;
  }
}

function connect(token, active) {
  const player = {token, active, requests: 0, actions: 0, started: now(), garden: null};
  player.ws = new WebSocket(config.url, ["cosmic.json.v1"], {perMessageDeflate: false});
  player.ws.on("open", () => {
    total.opened += 1;
    if (!config.waitForAuth) authenticate(player);
  });
  player.ws.on("message", (raw) => onMessage(player, raw));
  player.ws.on("close", (code) => {
    total.closed += 1;
    interval.closes[code] = (interval.closes[code] || 0) + 1;
    clearTimeout(player.timer);
  });
  player.ws.on("error", (err) => {
    total.failed += 1;
    interval.errors[err.code || "socket"] = (interval.errors[err.code || "socket"] || 0) + 1;
  });
  players.push(player);
}

function report(final) {
  const line = {
    t: now(), final, ...total,
    open: players.filter((p) => p.ws.readyState === WebSocket.OPEN).length,
    ...interval,
    latency: Object.fromEntries(interval.latency),
  };
  process.stdout.write(JSON.stringify(line) + "\n");
  interval = fresh();
}

let next = 0;
function ramp() {
  // Whole batches every 10 ms keep the requested rate without a timer per socket.
  const batch = Math.max(1, Math.round(config.rate / 100));
  for (let i = 0; i < batch && next < config.tokens.length; i++, next++) {
    const [token, active] = config.tokens[next];
    connect(token, active);
  }
  if (next < config.tokens.length) setTimeout(ramp, 10);
}

readline.createInterface({input: process.stdin}).on("line", (line) => {
  if (line.trim() === "auth") players.forEach(authenticate);
});
process.on("SIGTERM", () => {
  report(true);
  players.forEach((p) => p.ws.terminate());
  process.exit(0);
});
setInterval(() => report(false), 1000);
ramp();
