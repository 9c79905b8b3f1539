// The side panels and the resource bar.  Each rebuilds its DOM only when
// what it shows changed (not ten times a second), so buttons stay clickable.

import { COLORS } from "./render.js";
import { LABELS, amount, clock, cost, duration, el, rate, title } from "./format.js";

class Panel {
  constructor(root) {
    this.root = root;
    this.signature = null;
  }

  /** Replace the content when ``signature`` differs from the last one. */
  render(signature, build) {
    const key = JSON.stringify(signature);
    if (key === this.signature) return;
    this.signature = key;
    this.root.replaceChildren(...build());
  }
}

export class ResourceBar {
  constructor(root, resources) {
    this.cells = {};
    root.replaceChildren(
      ...resources.map((name) => {
        const value = el("span", { class: "value" }, "–");
        const perSecond = el("span", { class: "rate zero" }, "");
        this.cells[name] = { value, perSecond };
        return el("div", { class: "resource", dataset: { resource: name } }, el("span", { class: "label" }, LABELS[name] || title(name)), value, perSecond);
      }),
    );
  }

  update(progress) {
    for (const [name, cell] of Object.entries(this.cells)) {
      const value = progress.resources[name] || 0;
      const perSecond = progress.rates[name] || 0;
      cell.value.textContent = amount(value);
      cell.value.dataset.value = String(value);
      cell.perSecond.textContent = rate(perSecond);
      cell.perSecond.classList.toggle("zero", !perSecond);
    }
  }
}

export class BuildPanel extends Panel {
  constructor(root, rules, onPick) {
    super(root);
    this.rules = rules;
    this.onPick = onPick;
  }

  update({ resources, completed, counts, selected, owner }) {
    const kinds = Object.entries(this.rules.kinds).map(([name, kind]) => {
      const locked = kind.requires && !completed.includes(kind.requires);
      const parts = cost(kind.cost, resources);
      return { name, locked: Boolean(locked), requires: kind.requires, parts, count: counts[name] || 0, cap: kind.cap };
    });
    this.render([kinds, selected, owner], () =>
      kinds.map((k) =>
        el(
          "button",
          {
            type: "button",
            class: "kind",
            dataset: { kind: k.name },
            disabled: !owner || k.locked || k.count >= k.cap,
            "aria-pressed": selected === k.name ? "true" : "false",
            onclick: () => this.onPick(selected === k.name ? null : k.name),
          },
          el("span", { class: "name" }, el("span", { class: "dot", style: { background: COLORS[k.name] } }), title(k.name), k.count ? el("span", { class: "sub" }, `×${k.count}`) : null),
          k.locked
            ? el("span", { class: "lock" }, `needs ${title(k.requires)}`)
            : el("span", { class: "cost" }, ...k.parts.map((p, i) => el("span", { class: p.short ? "cost short" : "cost" }, (i ? " + " : "") + p.text))),
        ),
      ),
    );
  }
}

export class ResearchPanel extends Panel {
  constructor(root, activeRoot, rules, onStart) {
    super(root);
    this.activeRoot = activeRoot;
    this.rules = rules;
    this.onStart = onStart;
  }

  update({ research, resources, owner }) {
    const active = research.active;
    if (active) {
      const done = 1 - active.remaining / active.total;
      this.activeRoot.replaceChildren(
        `Researching ${title(active.name)}: ${duration(active.remaining)} left`,
        el("div", { class: "progress" }, el("div", { style: { width: `${Math.round(done * 100)}%` } })),
      );
    } else {
      this.activeRoot.textContent = owner ? "Nothing under research." : "";
    }
    const items = Object.entries(this.rules.research).map(([name, r]) => {
      const completed = research.completed.includes(name);
      const missing = r.requires.filter((x) => !research.completed.includes(x));
      return { name, completed, missing, running: active && active.name === name, parts: cost(r.cost, resources), seconds: r.seconds };
    });
    this.render([items, Boolean(active), owner], () =>
      items.map((item) =>
        el(
          "li",
          { class: item.completed ? "done" : item.missing.length ? "locked" : "", dataset: { research: item.name } },
          el(
            "div",
            {},
            title(item.name),
            el(
              "div",
              { class: "sub" },
              item.completed
                ? "done"
                : item.running
                  ? "under research"
                  : item.missing.length
                    ? `needs ${item.missing.map(title).join(", ")}`
                    : [...item.parts.map((p, i) => el("span", { class: p.short ? "short" : "" }, (i ? " + " : "") + p.text)), ` · ${duration(item.seconds)}`],
            ),
          ),
          item.completed || item.missing.length || !owner
            ? null
            : el("button", { type: "button", disabled: Boolean(active), onclick: () => this.onStart(item.name) }, item.running ? "running" : "Start"),
        ),
      ),
    );
  }
}

export class UpgradePanel extends Panel {
  constructor(root, rules, onBuy) {
    super(root);
    this.rules = rules;
    this.onBuy = onBuy;
  }

  update({ upgrades, resources, owner }) {
    const items = Object.entries(this.rules.upgrades).map(([name, u]) => {
      const state = upgrades[name] || { level: 0, next_cost: 0 };
      return { name, level: state.level, next: state.next_cost, bonus: u.bonus, max: u.max_level, short: (resources[name] || 0) < state.next_cost };
    });
    this.render([items, owner], () =>
      items.map((u) =>
        el(
          "li",
          { dataset: { upgrade: u.name } },
          el("div", {}, `${LABELS[u.name]} `, el("span", { class: "sub" }, `level ${u.level} · +${Math.round(u.bonus * 100)}% each`)),
          owner && u.level < u.max
            ? el("button", { type: "button", class: u.short ? "secondary" : "", onclick: () => this.onBuy(u.name) }, `Buy ${amount(u.next)}`)
            : null,
        ),
      ),
    );
  }
}

export class Board extends Panel {
  constructor(root, onObserve) {
    super(root);
    this.onObserve = onObserve;
  }

  update(kind, entries, ownGardenId, watching) {
    this.render([kind, entries, ownGardenId, watching], () =>
      entries.length
        ? entries.map((e) =>
            el(
              "li",
              { dataset: { garden: e.garden_id } },
              `${e.rank}. ${e.owner_name}`,
              el("span", { class: "score" }, kind === "transcendence" ? new Date(e.score * 1000).toLocaleDateString() : amount(e.score)),
              e.garden_id === ownGardenId
                ? el("span", { class: "sub" }, "you")
                : el("button", { type: "button", class: "observe", disabled: watching === e.garden_id, onclick: () => this.onObserve(e.garden_id, e.owner_name) }, "observe"),
            ),
          )
        : [el("li", { class: "sub" }, "nobody yet")],
    );
  }
}

const MAX_EVENTS = 100;

export class Feed {
  constructor(root) {
    this.root = root;
  }

  add(text, cls = "") {
    this.root.prepend(el("li", { class: cls }, el("time", {}, clock()), " ", el("span", { class: cls }, text)));
    while (this.root.children.length > MAX_EVENTS) this.root.lastChild.remove();
  }
}

/** One game event as a line of the feed (null for ones not worth a line). */
export function describe(event, name) {
  const d = event.data || {};
  switch (event.type) {
    case "BodyCreated":
      return `${d.body.name} created (${title(d.body.kind)})`;
    case "BodyDestroyed":
      return { collision: `${name(d.body_id)} merged into ${name(d.into)}`, black_hole: `${name(d.body_id)} fell into ${name(d.into)}`, escaped: `${name(d.body_id)} escaped the garden`, manual: `${name(d.body_id)} destroyed` }[d.reason] || `${name(d.body_id)} is gone`;
    case "Collision":
      return `collision: ${name(d.survivor)} absorbed ${name(d.absorbed)}`;
    case "LevelUp":
      return d.promoted_from ? `${name(d.body_id)} became a ${title(d.kind)}` : `${name(d.body_id)} reached level ${d.level}`;
    case "Evolution":
      return {
        extinct: `life on ${name(d.body_id)} died out`,
        stalled: `life on ${name(d.body_id)} stalled: outside the habitable zone`,
        resumed: `life on ${name(d.body_id)} resumed`,
        merger: `life on ${name(d.body_id)} was lost in a merger${d.kind ? ` (now a ${title(d.kind)})` : ""}`,
      }[d.reason] || `life on ${name(d.body_id)}: ${d.stage}`;
    case "ResearchStarted":
      return `research started: ${title(d.research)}`;
    case "ResearchDone":
      return `research done: ${title(d.research)}`;
    case "UpgradeBought":
      return `${LABELS[d.resource] || d.resource} upgraded to level ${d.level}`;
    case "OfflineProgress":
      return `welcome back: ${duration(d.seconds)} of production credited`;
    case "Transcended":
      return "the garden has transcended!";
    case "GardenUpdated":
      return "public" in d ? `garden is now ${d.public ? "public" : "private"}` : null;
    case "BodyUpdated":
      return d.name ? `renamed to ${d.name}` : null;
    default:
      return event.type;
  }
}
