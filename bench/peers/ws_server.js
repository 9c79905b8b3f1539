#!/usr/bin/env node
// A minimal Node `ws` broadcast server: the Node peer of bench/fanout.py.
//
//   node bench/peers/ws_server.js [--port 0] [--bytes 100] [--hz 10]
//
// Every 1/hz seconds it builds one binary message of --bytes bytes (the
// first 8 are the tick's start time, ms since the epoch, float64
// little-endian; the rest random, so nothing compresses) and sends it to
// every open client.  No game, no per-client state, no compression
// (perMessageDeflate off, as in the daemon's cosmic.msgpack-lz4.v1):
// the cost of the fan-out alone.  Prints "listening PORT" once ready;
// stops on SIGTERM or SIGINT.

"use strict";

const crypto = require("node:crypto");
const { WebSocketServer, WebSocket } = require("ws");

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? Number(process.argv[at + 1]) : fallback;
}

const port = option("port", 0);
const bytes = Math.max(8, option("bytes", 100));
const hz = option("hz", 10);
const period = 1000 / hz;

const server = new WebSocketServer({
  host: "127.0.0.1",
  port,
  backlog: 4096,
  perMessageDeflate: false,
  clientTracking: true,
  maxPayload: 65536,
});

const filler = crypto.randomBytes(bytes);

function tick() {
  const stamp = performance.timeOrigin + performance.now();
  const message = Buffer.allocUnsafe(bytes); // a new buffer per tick: sends may still hold the last
  filler.copy(message);
  message.writeDoubleLE(stamp, 0);
  for (const client of server.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(message, { binary: true });
  }
}

// Ticks on a fixed schedule (start + k * period), like the daemon's LoopingCall:
// a late tick does not shift the ones after it; missed ones are skipped.
// (Node may fire a timer up to a millisecond early, so the next tick is
// always one period on from the last one's slot, never the same slot again.)
let next = performance.now() + period;
function schedule() {
  setTimeout(
    () => {
      tick();
      next += period;
      const now = performance.now();
      while (next <= now) next += period;
      schedule();
    },
    Math.max(0, next - performance.now()),
  );
}

server.on("connection", (socket) => {
  socket.on("error", () => {});
});

server.on("listening", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
  schedule();
});

function stop() {
  for (const client of server.clients) client.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
