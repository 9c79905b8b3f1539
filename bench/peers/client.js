#!/usr/bin/env node
// The load clients of bench/fanout.py: one process holding many WebSocket
// clients (the `ws` package), the same for every server measured.
//
//   node bench/peers/client.js JOB.json
//
// JOB: {"url", "mode": "cosmic" | "raw", "clients": n, "tokens": [...] (cosmic),
//       "concurrency": opening handshakes at once, "out": result file}
//
// 1. Opens the connections, at most `concurrency` handshakes at a time.  In
//    "cosmic" mode (the daemon) each offers cosmic.msgpack-lz4.v1 and sends
//    Authenticate {token}; it is held once AuthenticateResponse arrives.  In
//    "raw" mode (the peers) it is held once open.
// 2. Prints {"ready": ..., "held": n, "failed": n} on stdout, then waits for
//    "go T0 T1" on stdin (ms since the epoch).
// 3. Records every state message that arrives in [T0, T1): cosmic mode
//    decodes each frame (LZ4 frame when it starts with the LZ4 magic, then
//    msgpack) and takes StateDelta's server_time; raw mode reads the float64
//    at offset 0.  Latency = arrival - that time (same machine, same clock).
// 4. At T1 writes {held, closed, messages, bytes, latencies, stamps (the distinct
//    server times seen: the ticks that reached this process), ...} to `out` and exits.

"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const { WebSocket } = require("ws");
const { encode, decode } = require("@msgpack/msgpack");
const lz4 = require("lz4js");

const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const cosmic = job.mode === "cosmic";
const total = cosmic ? job.tokens.length : job.clients;
const now = () => performance.timeOrigin + performance.now();

let t0 = Infinity;
let t1 = Infinity;
let held = 0;
let failed = 0;
let closedInWindow = 0;
let messages = 0; // state messages in the window
let bytes = 0; // their wire payload bytes
let fullSyncs = 0;
let other = 0;
let latencies = new Float64Array(1 << 16);
const stamps = new Set(); // distinct server tick times seen in the window
const errors = {};
const sockets = [];

function record(latency) {
  if (messages >= latencies.length) {
    const grown = new Float64Array(latencies.length * 2);
    grown.set(latencies);
    latencies = grown;
  }
  latencies[messages] = latency;
}

const LZ4_MAGIC = 0x184d2204;

function onCosmic(data, arrived) {
  let raw = data;
  if (data.length >= 4 && data.readUInt32LE(0) === LZ4_MAGIC) raw = lz4.decompress(data);
  const envelope = decode(raw);
  if (envelope.type === "StateDelta") {
    if (arrived >= t0 && arrived < t1) {
      record(arrived - envelope.data.server_time);
      stamps.add(envelope.data.server_time);
      messages += 1;
      bytes += data.length;
    }
  } else if (envelope.type === "FullStateSync") {
    if (arrived >= t0 && arrived < t1) fullSyncs += 1;
  } else if (envelope.type !== "AuthenticateResponse" && arrived >= t0 && arrived < t1) {
    other += 1;
    if (envelope.type === "Error") errors[envelope.data.code] = (errors[envelope.data.code] || 0) + 1;
  }
  return envelope.type;
}

function open(index) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok, why) => {
      if (settled) return;
      settled = true;
      if (ok) held += 1;
      else {
        failed += 1;
        errors[why] = (errors[why] || 0) + 1;
      }
      resolve();
    };
    const ws = cosmic
      ? new WebSocket(job.url, ["cosmic.msgpack-lz4.v1"], { perMessageDeflate: false })
      : new WebSocket(job.url, { perMessageDeflate: false });
    ws.binaryType = "nodebuffer";
    ws.on("open", () => {
      if (cosmic) {
        ws.send(encode({ type: "Authenticate", data: { token: job.tokens[index] }, id: 1 }));
      } else {
        done(true);
      }
    });
    ws.on("message", (data) => {
      const arrived = now();
      if (cosmic) {
        const type = onCosmic(data, arrived);
        if (type === "AuthenticateResponse") done(true);
        else if (type === "Error" && !settled) done(false, "auth error");
      } else if (arrived >= t0 && arrived < t1) {
        const stamp = data.readDoubleLE(0);
        record(arrived - stamp);
        stamps.add(stamp);
        messages += 1;
        bytes += data.length;
      }
    });
    ws.on("error", (err) => done(false, String(err.code || err.message)));
    ws.on("close", (code) => {
      const at = now();
      if (at >= t0 && at < t1) closedInWindow += 1;
      if (!settled) done(false, `closed ${code}`);
      ws.closedAt = at;
    });
    sockets.push(ws);
  });
}

async function connectAll() {
  let nextIndex = 0;
  const lanes = [];
  for (let k = 0; k < Math.min(job.concurrency || 50, total); k++) {
    lanes.push(
      (async () => {
        while (nextIndex < total) {
          const index = nextIndex++;
          await open(index);
        }
      })(),
    );
  }
  await Promise.all(lanes);
}

function finish() {
  const openNow = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  const result = {
    clients: total,
    held: openNow,
    authenticated: held,
    failed,
    closed_in_window: closedInWindow,
    messages,
    bytes,
    full_syncs: fullSyncs,
    other,
    errors,
    window_ms: t1 - t0,
    stamps: Array.from(stamps),
    latencies: Array.from(latencies.subarray(0, messages), (v) => Math.round(v * 100) / 100),
  };
  fs.writeFileSync(job.out, JSON.stringify(result));
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}

async function main() {
  const started = now();
  await connectAll();
  process.stdout.write(
    `${JSON.stringify({ ready: true, held, failed, connect_ms: now() - started, errors })}\n`,
  );
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const [word, a, b] = line.trim().split(/\s+/);
    if (word !== "go") return;
    t0 = Number(a);
    t1 = Number(b);
    setTimeout(finish, Math.max(0, t1 - now()) + 50);
  });
  lines.on("close", () => {
    if (t1 === Infinity) process.exit(1);
  });
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
