// The page: log in, connect, keep one replica per watched garden, draw the
// one on screen and drive the panels.  window.cosmic exposes the state
// (for the curious, and for the browser tests).

import { ApiError, Session, fetchRules, leaderboard } from "./api.js";
import { Connection } from "./connection.js";
import { GardenReplica, OutOfSync } from "./replica.js";
import { Sky, COLORS } from "./render.js";
import { Board, BuildPanel, Feed, ResearchPanel, ResourceBar, UpgradePanel, describe } from "./panels.js";
import { LABELS, amount, el, title } from "./format.js";

const $ = (id) => document.getElementById(id);
const BOARD_REFRESH_MS = 15000;
const NOTICE_MS = 20000;

const session = new Session();
const replicas = new Map();
const app = {
  rules: null,
  own: null, // the player's garden id
  view: null, // the garden on screen (own or observed)
  viewName: "",
  selected: null, // the kind chosen for placing
  board: "total_mass",
  boardTimer: null,
  resyncing: new Set(),
  hello: null, // the last AuthenticateResponse
  history: [], // connection states, oldest first
};

let sky, conn, bar, build, research, upgrades, board, feed;

function replicaOf(gardenId) {
  let r = replicas.get(gardenId);
  if (!r) {
    r = new GardenReplica();
    replicas.set(gardenId, r);
  }
  return r;
}

function shown() {
  return app.view !== null ? replicas.get(app.view) : null;
}

// -- state frames -----------------------------------------------------------------------

function onState(type, data) {
  const gardenId = data.garden_id;
  // Frames still in flight for a garden we stopped watching: not ours to keep.
  if (gardenId !== app.own && gardenId !== app.view) return;
  const replica = replicaOf(gardenId);
  let lines = [];
  if (type === "StateDelta" && data.base === replica.sequence && replica.gardenId === gardenId) {
    const name = (id) => (replica.bodies.get(id) || {}).name || `body ${id}`;
    lines = (data.events || []).map((e) => describe(e, name)).filter(Boolean);
  }
  try {
    replica.apply(type, data);
    app.resyncing.delete(gardenId);
  } catch (err) {
    resync(gardenId, replica, err instanceof OutOfSync);
    return;
  }
  if (gardenId === app.view) {
    for (const line of lines) feed.add(line, /escaped|died|fell/.test(line) ? "bad" : "");
    sky.update(replica);
    refreshPanels();
  }
}

/** A missed frame: ask for a delta against what we have (or all of it). */
function resync(gardenId, replica, intact) {
  if (app.resyncing.has(gardenId)) return; // asked already; the answer is on its way
  app.resyncing.add(gardenId);
  const data = { garden_id: gardenId };
  // A replica a frame could not be applied to is not trusted: full sync.
  if (intact && replica.sequence > 0) data.last_sequence = replica.sequence;
  else replica.sequence = 0;
  conn.request("SyncGameState", data).catch(() => app.resyncing.delete(gardenId));
}

// -- panels -----------------------------------------------------------------------------

function refreshPanels() {
  const replica = shown();
  if (!replica || replica.gardenId === null) return;
  const owner = app.view === app.own;
  const { resources, rates, upgrades: ups, research: res } = replica.progress;
  bar.update({ resources, rates });
  const counts = {};
  for (const row of replica.bodies.values()) counts[row.kind] = (counts[row.kind] || 0) + 1;
  build.update({ resources, completed: res.completed, counts, selected: app.selected, owner });
  research.update({ research: res, resources, owner });
  upgrades.update({ upgrades: ups, resources, owner });
  const own = replicas.get(app.own);
  if (own) $("public").checked = Boolean(own.header.public);
  $("sky").setAttribute("aria-label", `${replica.header.name || "garden"}: ${replica.bodies.size} bodies`);
}

function showError(id, err) {
  $(id).textContent = err ? err.message : "";
  if (err) setTimeout(() => {
    if ($(id).textContent === err.message) $(id).textContent = "";
  }, 8000);
}

function pick(kind) {
  app.selected = kind;
  showError("build-error", null);
  if (kind) {
    const k = app.rules.kinds[kind];
    const costText = Object.entries(k.cost).map(([r, v]) => `${amount(v)} ${LABELS[r]}`).join(" + ");
    $("build-hint").textContent = kind === "moon"
      ? "Click a planet or gas giant for the moon to orbit."
      : `Click in the garden to place a ${title(kind)} (${costText}); it gets a circular orbit.`;
    sky.placing = { kind, color: COLORS[kind], label: `${title(kind)} · ${costText}` };
    $("build-hint").append(" ", el("button", { type: "button", id: "place-anywhere", onclick: () => create({ kind }) }, "anywhere"));
  } else {
    $("build-hint").textContent = "";
    sky.placing = null;
  }
  $("sky").classList.toggle("placing", Boolean(kind));
  refreshPanels();
}

async function create(data) {
  showError("build-error", null);
  try {
    const result = await conn.request("CreateCelestialBody", data);
    feed.add(`placed ${result.body.name}`);
  } catch (err) {
    showError("build-error", err);
  }
}

function place([x, y], row, bodyId) {
  if (!app.selected || app.view !== app.own) return;
  if (app.selected === "moon") {
    if (!row || !["planet", "gas_giant"].includes(row.kind)) {
      showError("build-error", new Error("a moon needs a planet or gas giant: click one"));
      return;
    }
    create({ kind: "moon", parent_id: bodyId });
    return;
  }
  create({ kind: app.selected, position: [x, y, 0] });
}

async function command(type, data, errorId) {
  showError(errorId, null);
  try {
    await conn.request(type, data);
  } catch (err) {
    showError(errorId, err);
  }
}

// -- observing and leaderboards ----------------------------------------------------------

async function observe(gardenId, name) {
  showError("board-error", null);
  try {
    if (app.view !== app.own && app.view !== null) await stopObserving(false);
    app.view = gardenId;
    app.viewName = name;
    sky.reset();
    replicas.delete(gardenId);
    await conn.request("ObserveGarden", { garden_id: gardenId });
    showViewing();
  } catch (err) {
    backHome();
    showError("board-error", err);
  }
}

async function stopObserving(home = true) {
  const gardenId = app.view;
  if (home) backHome();
  if (gardenId !== null && gardenId !== app.own) {
    await conn.request("StopObserving", { garden_id: gardenId }).catch(() => {});
    replicas.delete(gardenId);
  }
}

function backHome() {
  app.view = app.own;
  app.viewName = "";
  sky.reset();
  const own = replicas.get(app.own);
  if (own) sky.update(own);
  showViewing();
  refreshPanels();
}

function showViewing() {
  const observing = app.view !== app.own;
  $("viewing").hidden = !observing;
  $("viewing-name").textContent = app.viewName ? `${app.viewName}'s garden` : "";
  if (observing) pick(null);
  refreshBoard();
}

async function refreshBoard() {
  clearTimeout(app.boardTimer);
  app.boardTimer = setTimeout(refreshBoard, BOARD_REFRESH_MS);
  try {
    const answer = await leaderboard(app.board, 10);
    board.update(app.board, answer.entries, app.own, app.view);
    showError("board-error", null);
  } catch (err) {
    showError("board-error", err);
  }
}

// -- messages and connection -------------------------------------------------------------

function notice(text, from = "operators") {
  const node = el("div", { class: "notice", role: "status" }, el("div", { class: "from" }, from), text);
  $("notices").append(node);
  setTimeout(() => node.remove(), NOTICE_MS);
  feed.add(`${from}: ${text}`, "bad");
}

function onMessage(type, data) {
  switch (type) {
    case "FullStateSync":
    case "StateDelta":
      onState(type, data);
      break;
    case "Notice":
      notice(data.text);
      break;
    case "ObservationStopped":
      for (const gardenId of data.garden_ids || []) replicas.delete(gardenId);
      if ((data.garden_ids || []).includes(app.view) && data.reason !== "requested") {
        notice(data.reason === "private" ? "the owner made that garden private" : "that garden is gone", "observing");
        backHome();
      }
      break;
    case "Error":
      if (!data.recoverable) notice(data.message, "server");
      else if (data.code === "WS_RATE_001") notice("slow down: too many messages", "server");
      break;
    default:
      break;
  }
}

function onConnectionState(state, detail) {
  if (app.history[app.history.length - 1] !== state) {
    app.history.push(state);
    if (app.history.length > 50) app.history.shift();
  }
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = detail ? `${state} · ${detail}` : state;
  node.title = detail;
}

function onAuthenticated(hello) {
  app.hello = hello;
  app.own = hello.garden_id;
  if (!hello.resumed) {
    // A new session streams only the player's garden: the observed one must
    // be asked for again, and every replica starts from a full sync.
    for (const gardenId of [...replicas.keys()]) if (gardenId !== app.own) replicas.delete(gardenId);
    const own = replicas.get(app.own);
    if (own) own.sequence = 0;
    if (app.view !== null && app.view !== app.own) {
      conn.request("ObserveGarden", { garden_id: app.view }).catch((err) => {
        backHome();
        showError("board-error", err);
      });
    }
  }
  if (app.view === null) app.view = app.own;
  app.resyncing.clear();
  refreshBoard();
}

function onLoggedOut(err) {
  showAuth(err && err.code !== "AUTH_LOGGED_OUT" ? `Please log in again (${err.message}).` : "");
}

// -- log in -------------------------------------------------------------------------------

function showAuth(message = "") {
  if (conn) conn.stop();
  replicas.clear();
  app.view = app.own = null;
  $("auth").hidden = false;
  $("game").hidden = true;
  $("resources").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("auth-error").textContent = message;
}

function showGame() {
  $("auth").hidden = true;
  $("game").hidden = false;
  $("resources").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = session.account ? session.account.display_name : "";
  sky.resize();
  conn.start();
}

async function submitAuth(event) {
  event.preventDefault();
  const form = event.target;
  const action = event.submitter ? event.submitter.value : "login";
  const username = form.username.value.trim();
  const password = form.password.value;
  $("auth-error").textContent = "";
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  try {
    if (action === "register") await session.register(username, password);
    else await session.login(username, password);
    form.password.value = "";
    showGame();
  } catch (err) {
    $("auth-error").textContent = err instanceof ApiError ? err.message : String(err);
  } finally {
    for (const button of form.querySelectorAll("button")) button.disabled = false;
  }
}

async function start() {
  app.rules = await fetchRules();
  sky = new Sky($("sky"));
  sky.gardenRadius = app.rules.garden_radius;
  sky.onPlace = place;
  bar = new ResourceBar($("resources"), app.rules.resources);
  build = new BuildPanel($("kinds"), app.rules, pick);
  research = new ResearchPanel($("research"), $("research-active"), app.rules, (name) => command("StartResearch", { research: name }, "research-error"));
  upgrades = new UpgradePanel($("upgrades"), app.rules, (resource) => command("BuyUpgrade", { resource }, "upgrade-error"));
  board = new Board($("board"), observe);
  feed = new Feed($("events"));
  conn = new Connection(session, () => (replicas.get(app.own) || { sequence: 0 }).sequence, {
    onMessage,
    onState: onConnectionState,
    onAuthenticated,
    onLoggedOut,
  });

  $("auth-form").addEventListener("submit", submitAuth);
  $("logout").addEventListener("click", async () => {
    await session.logout();
    showAuth();
  });
  $("stop-observing").addEventListener("click", () => stopObserving());
  $("public").addEventListener("change", (e) => command("SetGardenPublic", { public: e.target.checked }, "board-error"));
  for (const tab of $("board-tabs").querySelectorAll("button")) {
    tab.addEventListener("click", () => {
      app.board = tab.dataset.board;
      for (const other of $("board-tabs").querySelectorAll("button")) other.classList.toggle("active", other === tab);
      refreshBoard();
    });
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") pick(null);
  });

  window.cosmic = {
    app,
    replicas,
    session,
    get state() {
      return conn.state;
    },
    get connection() {
      return conn;
    },
    /** Bodies of the garden on screen: ids, kinds and positions in AU (the replica's). */
    bodies() {
      const replica = shown();
      if (!replica) return [];
      return [...replica.bodies].map(([id, row]) => ({ id, kind: row.kind, name: row.name, position: replica.position(row) }));
    },
    drawn: () => sky.drawn(),
    toScreen: (x, y) => sky.toScreen(x, y),
    view: () => ({ ...sky.view }),
  };

  if (session.loggedIn) showGame();
  else showAuth();
  document.body.dataset.ready = "true";
}

start().catch((err) => {
  document.body.prepend(el("p", { class: "error" }, `The client failed to start: ${err.message}`));
});
