// The garden on a canvas: top-down (x, y) with pan and zoom.  Bodies glide
// from the position they had on screen to the newest one over one broadcast
// interval, so 10 frames a second look like continuous motion.

export const COLORS = {
  asteroid: "#a89f91",
  comet: "#9fe8ff",
  moon: "#cfd3dc",
  dwarf_planet: "#c7a27c",
  planet: "#5fa8ff",
  gas_giant: "#e0a96d",
  star: "#ffd36b",
  black_hole: "#b07bff",
};
const LIFE = { microbial: "#8fe3b0", plant: "#5fd36b", animal: "#3fcf7a", intelligent: "#41f0c8" };
const RINGS = [1, 2, 5, 10, 20, 50, 100];
const TRAIL_POINTS = 240;
const TRAIL_EVERY_MS = 250;

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

export class Sky {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.view = { cx: 0, cy: 0, scale: 40, auto: true };
    this.tracks = new Map();
    this.interval = 100;
    this.lastFrame = 0;
    this.gardenRadius = 100;
    this.placing = null; // {kind, color, label} while a kind is chosen
    this.pointer = null;
    this.onPlace = () => {};
    this.stars = this.starfield(220);
    this.size = { w: 1, h: 1 };
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    this.listen();
    const frame = () => {
      this.draw(performance.now());
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  starfield(n) {
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    return Array.from({ length: n }, () => [rnd(), rnd(), rnd() * 1.2 + 0.2, rnd() * 0.5 + 0.2]);
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, this.canvas.clientWidth);
    const h = Math.max(1, this.canvas.clientHeight);
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.size = { w, h };
  }

  toScreen(x, y) {
    const { cx, cy, scale } = this.view;
    return [this.size.w / 2 + (x - cx) * scale, this.size.h / 2 - (y - cy) * scale];
  }

  toWorld(px, py) {
    const { cx, cy, scale } = this.view;
    return [cx + (px - this.size.w / 2) / scale, cy - (py - this.size.h / 2) / scale];
  }

  /** A new garden on screen: forget the old tracks and fit the view again. */
  reset() {
    this.tracks.clear();
    this.view.auto = true;
    this.lastFrame = 0;
  }

  /** Take the replica's bodies after a frame was applied. */
  update(replica, now = performance.now()) {
    if (this.lastFrame) {
      // Glide over the measured frame spacing (it varies with the network).
      const gap = clamp(now - this.lastFrame, 30, 600);
      this.interval = this.interval * 0.8 + gap * 0.2;
    }
    this.lastFrame = now;
    const seen = new Set();
    for (const [id, row] of replica.bodies) {
      seen.add(id);
      const p = replica.position(row);
      let track = this.tracks.get(id);
      if (!track) {
        track = { prev: p, curr: p, t: now, trail: [p], trailAt: now, row };
        this.tracks.set(id, track);
        continue;
      }
      track.prev = this.at(track, now);
      track.curr = p;
      track.t = now;
      track.row = row;
      if (now - track.trailAt >= TRAIL_EVERY_MS) {
        track.trail.push(p);
        track.trailAt = now;
        if (track.trail.length > TRAIL_POINTS) track.trail.shift();
      }
    }
    for (const id of this.tracks.keys()) if (!seen.has(id)) this.tracks.delete(id);
  }

  at(track, now) {
    const a = clamp((now - track.t) / this.interval, 0, 1);
    return [
      track.prev[0] + (track.curr[0] - track.prev[0]) * a,
      track.prev[1] + (track.curr[1] - track.prev[1]) * a,
      track.prev[2] + (track.curr[2] - track.prev[2]) * a,
    ];
  }

  /** Where each body is drawn now (AU), for the page's debug object. */
  drawn(now = performance.now()) {
    return [...this.tracks].map(([id, t]) => ({ id, kind: t.row.kind, position: this.at(t, now) }));
  }

  fit() {
    // Centred on the garden's origin (where its first star sits): the view
    // does not wander as bodies come and go, it only zooms.
    let extent = 3;
    for (const t of this.tracks.values()) {
      extent = Math.max(extent, Math.abs(t.curr[0]), Math.abs(t.curr[1]));
    }
    extent = Math.min(extent, this.gardenRadius * 2);
    const scale = (Math.min(this.size.w, this.size.h) / 2 - 20) / (extent * 1.15);
    // Eased, so a far body appearing zooms out smoothly instead of jumping.
    const v = this.view;
    v.cx += (0 - v.cx) * 0.1;
    v.cy += (0 - v.cy) * 0.1;
    v.scale += (Math.max(scale, 0.5) - v.scale) * 0.1;
  }

  radiusPx(row) {
    const base = 2.5 + 14 * Math.sqrt(row.radius || 0.01);
    return Math.max(base, (row.radius || 0) * this.view.scale);
  }

  draw(now) {
    const { ctx } = this;
    const { w, h } = this.size;
    if (this.view.auto) this.fit();
    ctx.fillStyle = "#05060f";
    ctx.fillRect(0, 0, w, h);
    for (const [x, y, r, a] of this.stars) {
      ctx.fillStyle = `rgba(200,210,255,${a})`;
      ctx.fillRect(x * w, y * h, r, r);
    }
    this.drawRings();
    const drawn = [];
    for (const t of this.tracks.values()) drawn.push([t, this.at(t, now)]);
    for (const [t, p] of drawn) this.drawTrail(t, p);
    // Heavy bodies last: a star is never hidden under its asteroids' dots.
    drawn.sort((a, b) => (a[0].row.mass || 0) - (b[0].row.mass || 0));
    for (const [t, p] of drawn) this.drawBody(t.row, p);
    this.drawPointer(drawn);
  }

  drawRings() {
    const { ctx } = this;
    const [ox, oy] = this.toScreen(0, 0);
    ctx.lineWidth = 1;
    ctx.font = "10px system-ui, sans-serif";
    for (const au of RINGS) {
      const r = au * this.view.scale;
      if (r < 25 || r > 4 * Math.max(this.size.w, this.size.h)) continue;
      ctx.strokeStyle = "rgba(127,184,255,0.08)";
      ctx.beginPath();
      ctx.arc(ox, oy, r, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.fillStyle = "rgba(127,184,255,0.35)";
      ctx.fillText(`${au} AU`, ox + r * 0.707 + 3, oy - r * 0.707 - 3);
    }
    const edge = this.gardenRadius * this.view.scale;
    ctx.setLineDash([6, 6]);
    ctx.strokeStyle = "rgba(255,123,123,0.25)";
    ctx.beginPath();
    ctx.arc(ox, oy, edge, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.setLineDash([]);
  }

  drawTrail(track, p) {
    const points = track.trail;
    if (points.length < 2) return;
    const { ctx } = this;
    const color = COLORS[track.row.kind] || "#ffffff";
    ctx.lineWidth = 1.2;
    // Older parts fainter: a few strokes of rising opacity.
    const parts = 6;
    const step = Math.ceil(points.length / parts);
    for (let i = 0; i < points.length; i += step) {
      const chunk = points.slice(i, i + step + 1);
      if (i + step >= points.length) chunk.push(p);
      ctx.globalAlpha = 0.08 + 0.4 * ((i + step) / points.length);
      ctx.strokeStyle = color;
      ctx.beginPath();
      chunk.forEach(([x, y], k) => {
        const [sx, sy] = this.toScreen(x, y);
        if (k === 0) ctx.moveTo(sx, sy);
        else ctx.lineTo(sx, sy);
      });
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  drawBody(row, p) {
    const { ctx } = this;
    const [x, y] = this.toScreen(p[0], p[1]);
    const r = this.radiusPx(row);
    if (x < -r * 4 || y < -r * 4 || x > this.size.w + r * 4 || y > this.size.h + r * 4) return;
    const color = COLORS[row.kind] || "#ffffff";
    if (row.kind === "star") {
      const glow = ctx.createRadialGradient(x, y, r * 0.5, x, y, r * 3.5);
      glow.addColorStop(0, "rgba(255,211,107,0.55)");
      glow.addColorStop(1, "rgba(255,211,107,0)");
      ctx.fillStyle = glow;
      ctx.beginPath();
      ctx.arc(x, y, r * 3.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.beginPath();
    ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fillStyle = row.kind === "black_hole" ? "#000" : color;
    ctx.fill();
    if (row.kind === "black_hole") {
      ctx.lineWidth = 2;
      ctx.strokeStyle = color;
      ctx.stroke();
    }
    const life = LIFE[row.life_stage];
    if (life) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = life;
      ctx.beginPath();
      ctx.arc(x, y, r + 3, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  drawPointer(drawn) {
    const pointer = this.pointer;
    if (!pointer || pointer.dragging) return;
    const { ctx } = this;
    if (this.placing) {
      ctx.globalAlpha = 0.6;
      ctx.fillStyle = this.placing.color;
      ctx.beginPath();
      ctx.arc(pointer.x, pointer.y, 6, 0, 2 * Math.PI);
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.fillStyle = "#dfe4ff";
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillText(this.placing.label, pointer.x + 10, pointer.y - 8);
      return;
    }
    const hit = this.nearest(drawn, pointer.x, pointer.y, 14);
    if (!hit) return;
    const [track, p] = hit;
    const [x, y] = this.toScreen(p[0], p[1]);
    const r = this.radiusPx(track.row);
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.arc(x, y, r + 5, 0, 2 * Math.PI);
    ctx.stroke();
    const dist = Math.hypot(p[0], p[1]).toFixed(2);
    const text = `${track.row.name} · ${track.row.kind.replace("_", " ")} · ${dist} AU`;
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "rgba(18,22,42,0.9)";
    const width = ctx.measureText(text).width;
    ctx.fillRect(x + r + 8, y - 10, width + 10, 20);
    ctx.fillStyle = "#dfe4ff";
    ctx.fillText(text, x + r + 13, y + 4);
  }

  nearest(drawn, px, py, within) {
    let best = null;
    let bestD = Infinity;
    for (const entry of drawn) {
      const [x, y] = this.toScreen(entry[1][0], entry[1][1]);
      const d = Math.hypot(x - px, y - py) - this.radiusPx(entry[0].row);
      if (d < within && d < bestD) {
        best = entry;
        bestD = d;
      }
    }
    return best;
  }

  listen() {
    const c = this.canvas;
    const local = (e) => {
      const box = c.getBoundingClientRect();
      return [e.clientX - box.left, e.clientY - box.top];
    };
    c.addEventListener("pointerdown", (e) => {
      const [x, y] = local(e);
      this.pointer = { x, y, downX: x, downY: y, down: true, dragging: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      const [x, y] = local(e);
      const p = this.pointer || { down: false };
      if (p.down && (p.dragging || Math.hypot(x - p.downX, y - p.downY) > 4)) {
        p.dragging = true;
        this.view.auto = false;
        this.view.cx -= (x - p.x) / this.view.scale;
        this.view.cy += (y - p.y) / this.view.scale;
      }
      this.pointer = { ...p, x, y };
    });
    c.addEventListener("pointerup", (e) => {
      const p = this.pointer;
      if (p && p.down && !p.dragging) {
        const [x, y] = local(e);
        const drawn = [...this.tracks.values()].map((t) => [t, this.at(t, performance.now())]);
        const hit = this.nearest(drawn, x, y, 6);
        this.onPlace(this.toWorld(x, y), hit ? hit[0].row : null, hit ? this.idOf(hit[0]) : null);
      }
      if (p) this.pointer = { ...p, down: false, dragging: false };
    });
    c.addEventListener("pointerleave", () => {
      if (this.pointer && !this.pointer.down) this.pointer = null;
    });
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const [x, y] = local(e);
        const before = this.toWorld(x, y);
        this.view.auto = false;
        this.view.scale = clamp(this.view.scale * Math.exp(-e.deltaY * 0.0015), 0.5, 20000);
        const after = this.toWorld(x, y);
        this.view.cx += before[0] - after[0];
        this.view.cy += before[1] - after[1];
      },
      { passive: false },
    );
    c.addEventListener("dblclick", () => {
      this.view.auto = true;
    });
  }

  idOf(track) {
    for (const [id, t] of this.tracks) if (t === track) return id;
    return null;
  }
}
