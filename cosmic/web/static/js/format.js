// Numbers and names as players read them.

export const LABELS = {
  cosmic_dust: "dust",
  energy: "energy",
  organic_matter: "organic",
  biomass: "biomass",
  dark_matter: "dark matter",
  thought_points: "thought",
};

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });

export function amount(n) {
  if (!Number.isFinite(n)) return "–";
  if (Math.abs(n) < 10000) return (Math.round(n * 10) / 10).toLocaleString("en");
  return compact.format(n);
}

export function rate(n) {
  if (!n) return "+0/s";
  const digits = Math.abs(n) < 10 ? 2 : 1;
  return `${n > 0 ? "+" : ""}${Number(n.toFixed(digits)).toLocaleString("en")}/s`;
}

export function title(name) {
  return name.replaceAll("_", " ");
}

/** "100 dust + 500 energy", each part marked when the player lacks it. */
export function cost(costs, resources) {
  return Object.entries(costs).map(([resource, value]) => ({
    text: `${amount(value)} ${LABELS[resource] || title(resource)}`,
    short: (resources[resource] || 0) < value,
  }));
}

export function duration(seconds) {
  if (seconds < 90) return `${Math.ceil(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`.replace(" 0 s", "");
}

export function clock(date = new Date()) {
  return date.toTimeString().slice(0, 8);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    // Through the CSSOM: the page's CSP refuses inline style attributes.
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
