// The state a client rebuilds from the frames: cosmic/net/client.py's
// GardenReplica in JavaScript (docs/protocol.rst, "State").  Positions and
// velocities stay integers (quantum steps), so they equal the server's
// exactly: the server keeps every step count below 2^53.

export const COLUMNS = ["kind", "name", "mass", "radius", "level", "life_stage", "population", "created_at"];

export class OutOfSync extends Error {}

function rows(columns) {
  const out = new Map();
  columns.ids.forEach((id, i) => {
    const row = {};
    for (const name of COLUMNS) {
      if (name in columns) row[name] = columns[name][i];
    }
    row.position = columns.position.slice(3 * i, 3 * i + 3);
    row.velocity = columns.velocity.slice(3 * i, 3 * i + 3);
    out.set(id, row);
  });
  return out;
}

export class GardenReplica {
  constructor() {
    this.gardenId = null;
    this.sequence = 0;
    this.gardenSeq = 0;
    this.gameTime = 0;
    this.role = null;
    this.header = {};
    this.quantum = { position: 1e-4, velocity: 1e-3 };
    this.progress = { resources: {}, rates: {}, upgrades: {}, research: { completed: [], active: null } };
    this.bodies = new Map();
  }

  /** Apply a FullStateSync or StateDelta; returns the game events it carried. */
  apply(type, data) {
    if (type === "FullStateSync") return this.full(data);
    if (type === "StateDelta") return this.delta(data);
    throw new Error(`not a state message: ${type}`);
  }

  full(data) {
    this.gardenId = data.garden_id;
    this.sequence = data.sequence;
    this.gardenSeq = data.garden_seq;
    this.gameTime = data.game_time;
    this.role = data.role;
    this.header = { ...data.garden };
    this.quantum = { ...data.quantum };
    this.progress = {
      resources: { ...data.resources },
      rates: { ...data.rates },
      upgrades: { ...data.upgrades },
      research: data.research,
    };
    this.bodies = rows(data.bodies);
    return [];
  }

  delta(data) {
    if (data.base !== this.sequence || data.garden_id !== this.gardenId) {
      throw new OutOfSync(`delta on ${data.base}, we have ${this.sequence}`);
    }
    this.sequence = data.sequence;
    this.gardenSeq = data.garden_seq;
    this.gameTime = data.game_time;
    for (const key of ["resources", "rates", "upgrades"]) {
      if (data[key]) this.progress[key] = { ...this.progress[key], ...data[key] };
    }
    if ("research" in data) this.progress.research = data.research;
    if (data.garden) Object.assign(this.header, data.garden);
    for (const id of data.removed || []) this.bodies.delete(id);
    const motion = data.motion;
    if (motion) {
      motion.ids.forEach((id, i) => {
        const row = this.bodies.get(id);
        for (let k = 0; k < 3; k++) {
          row.position[k] += motion.position[3 * i + k];
          row.velocity[k] += motion.velocity[3 * i + k];
        }
      });
    }
    const changed = data.changed;
    if (changed) {
      changed.ids.forEach((id, i) => {
        const row = this.bodies.get(id);
        for (const name of COLUMNS) {
          if (name in changed) row[name] = changed[name][i];
        }
      });
    }
    if (data.added) {
      for (const [id, row] of rows(data.added)) this.bodies.set(id, row);
    }
    return data.events || [];
  }

  /** Body position in AU. */
  position(row) {
    const q = this.quantum.position;
    return [row.position[0] * q, row.position[1] * q, row.position[2] * q];
  }
}
