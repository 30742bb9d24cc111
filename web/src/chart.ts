// A small line chart drawn as SVG with DOM calls (no markup strings, no style attributes, so the
// page's Content-Security-Policy holds): a fixed time window ending now, a y axis from 0 to a
// round maximum, one line per series with a gap where a sample is missing, and the current value
// of each series written above it.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 360;
const HEIGHT = 150;
const LEFT = 46;
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 20;

/** One moment: its time (ms since the epoch) and one value per series (null: not known). */
export interface Point {
  t: number;
  values: (number | null)[];
}

export interface Series {
  name: string;
  /** A CSS class giving the line and its legend their colour. */
  tone: string;
}

function svg(tag: string, attrs: Record<string, string | number> = {}, text?: string): SVGElement {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** The smallest of 1, 2, 5 × 10^k at or above `value` (at least `floor`). */
export function roundUp(value: number, floor = 1): number {
  if (!(value > floor)) return floor;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** A number short enough for an axis: 1234 → "1.2k", 0.5 → "0.5", 12.345 → "12.3". */
export function short(value: number): string {
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6) return `${Number((value / 1e6).toFixed(1))}M`;
  if (magnitude >= 1e4) return `${Number((value / 1e3).toFixed(1))}k`;
  if (magnitude >= 100 || Number.isInteger(value)) return String(Math.round(value));
  if (magnitude >= 10) return String(Number(value.toFixed(1)));
  return String(Number(value.toFixed(2)));
}

export class LineChart {
  readonly element: HTMLElement;
  private readonly plot: SVGElement;
  private readonly currents: HTMLElement[];
  private readonly noteLine: HTMLElement;
  /** The line of series and their current values (callers may add a detail to it). */
  readonly legend: HTMLElement;

  constructor(
    id: string,
    title: string,
    private readonly unit: string,
    private readonly series: Series[],
    private readonly windowMs: number,
    /** Counts (events, sockets): the axis shows whole numbers only. */
    private readonly whole = false,
  ) {
    this.element = document.createElement("figure");
    this.element.id = id;
    this.element.className = "line-chart";
    const caption = document.createElement("figcaption");
    const heading = document.createElement("h3");
    heading.textContent = title;
    const legend = document.createElement("p");
    legend.className = "legend";
    this.currents = series.map((s, index) => {
      const item = document.createElement("span");
      item.className = `series ${s.tone}`;
      item.dataset.series = String(index);
      const swatch = document.createElement("i");
      swatch.className = "swatch";
      const value = document.createElement("strong");
      value.className = "current";
      value.textContent = "–";
      item.append(swatch, `${s.name} `, value);
      legend.append(item);
      return value;
    });
    this.legend = legend;
    caption.append(heading, legend);
    this.plot = svg("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-label": `${title} over the last ${Math.round(windowMs / 60_000)} minutes`,
    });
    this.noteLine = document.createElement("p");
    this.noteLine.className = "chart-note";
    this.noteLine.setAttribute("role", "status");
    this.element.append(caption, this.plot, this.noteLine);
  }

  /** A short message over the chart (why there are no new samples), or none. */
  note(message: string): void {
    this.noteLine.textContent = message;
    this.element.classList.toggle("noted", message !== "");
  }

  /** Draws `points` (oldest first) in the window ending at `now`. */
  render(points: Point[], now: number): void {
    const start = now - this.windowMs;
    const shown = points.filter((p) => p.t >= start);
    const known = shown.flatMap((p) => p.values.filter((v): v is number => v !== null && Number.isFinite(v)));
    const top = roundUp(Math.max(0, ...known), this.whole ? 2 : 1);
    const x = (t: number): number => LEFT + ((t - start) / this.windowMs) * (WIDTH - LEFT - RIGHT);
    const y = (v: number): number => TOP + (1 - Math.min(v, top) / top) * (HEIGHT - TOP - BOTTOM);

    const children: SVGElement[] = [];
    for (const fraction of [0, 0.5, 1]) {
      const value = top * fraction;
      if (this.whole && !Number.isInteger(value)) continue;
      children.push(svg("line", { class: "grid", x1: LEFT, x2: WIDTH - RIGHT, y1: y(value), y2: y(value) }));
      children.push(svg("text", { class: "tick y", x: LEFT - 4, y: y(value) + 4 }, short(value)));
    }
    const minutes = Math.round(this.windowMs / 60_000);
    for (let m = minutes; m >= 0; m -= 1) {
      const at = now - m * 60_000;
      children.push(svg("text", { class: "tick x", x: x(at), y: HEIGHT - 5 }, m === 0 ? "now" : `−${m} min`));
    }
    children.push(svg("line", { class: "axis", x1: LEFT, x2: LEFT, y1: TOP, y2: HEIGHT - BOTTOM }));
    children.push(svg("line", { class: "axis", x1: LEFT, x2: WIDTH - RIGHT, y1: HEIGHT - BOTTOM, y2: HEIGHT - BOTTOM }));
    children.push(svg("text", { class: "unit", x: LEFT + 4, y: TOP + 10 }, this.unit));

    this.series.forEach((s, index) => {
      let path = "";
      let drawing = false;
      for (const point of shown) {
        const value = point.values[index];
        if (value === null || !Number.isFinite(value)) {
          drawing = false;
          continue;
        }
        path += `${drawing ? "L" : "M"}${x(point.t).toFixed(1)},${y(value).toFixed(1)}`;
        drawing = true;
      }
      if (path) children.push(svg("path", { class: `line ${s.tone}`, d: path, "data-series": index }));
      // The newest sample only: after a failed read the current value is not known.
      const latest = shown.length ? shown[shown.length - 1].values[index] : null;
      const current = this.currents[index];
      current.textContent = latest === null || latest === undefined ? "–" : short(latest);
      current.dataset.value = latest === null || latest === undefined ? "" : String(latest);
    });
    this.plot.replaceChildren(...children);
  }
}
