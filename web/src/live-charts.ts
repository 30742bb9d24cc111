// The dashboard's charts of the service's own metrics: commands per second, projection lag and
// live websocket subscribers. The page reads /metrics (the Prometheus text format, staff only
// off loopback) every few seconds and keeps its own samples for a rolling window: the charts
// start empty when the page opens and show what happened while it was open.
import { LineChart, type Point } from "./chart";
import { parseMetrics, select, sum, type Sample } from "./prometheus";

const EVERY_MS = 2000;
const WINDOW_MS = 5 * 60_000;
const TIMEOUT_MS = 5000;

/** The counters a rate is computed from, as read at one moment. */
interface Counters {
  t: number;
  accepted: number;
  refused: number; // every outcome but accepted
}

function metricsUrl(): string {
  return new URL("/metrics", window.location.href).toString();
}

/** The increase of a counter per second; a counter that went down was reset (a restart). */
function rate(before: number, after: number, seconds: number): number {
  const increase = after >= before ? after - before : after;
  return seconds > 0 ? increase / seconds : 0;
}

/** The largest known value of a per-projection gauge (-1 means unknown), or null. */
function worst(samples: Sample[], name: string): number | null {
  const known = select(samples, name)
    .map((s) => s.value)
    .filter((v) => v >= 0);
  return known.length ? Math.max(...known) : null;
}

/** Why a read of /metrics gave no numbers, in a line for the chart area. */
function refusal(status: number): string {
  if (status === 401) return "No metrics: the service did not take this token for /metrics (HTTP 401).";
  if (status === 403) return "No metrics: /metrics is for staff only (HTTP 403).";
  return `No metrics: the service answered HTTP ${status}.`;
}

export class LiveCharts {
  readonly element: HTMLElement;
  private readonly commands = new LineChart(
    "chart-commands",
    "Commands",
    "commands/s",
    [
      { name: "accepted", tone: "tone-ok" },
      { name: "not accepted", tone: "tone-bad" },
    ],
    WINDOW_MS,
  );
  private readonly lag = new LineChart(
    "chart-lag",
    "Projection lag",
    "events behind",
    [{ name: "events", tone: "tone-lag" }],
    WINDOW_MS,
    true,
  );
  private readonly lagSeconds: HTMLElement;
  private readonly subscribers = new LineChart(
    "chart-subscribers",
    "Live subscribers",
    "open",
    [
      { name: "connections", tone: "tone-conn" },
      { name: "subscriptions", tone: "tone-subs" },
    ],
    WINDOW_MS,
    true,
  );
  private readonly charts = [this.commands, this.lag, this.subscribers];
  private readonly points = { commands: [] as Point[], lag: [] as Point[], subscribers: [] as Point[] };
  private previous: Counters | null = null;
  private timer: number | undefined;
  private stopped = false;

  constructor(private readonly token: string) {
    this.element = document.createElement("section");
    this.element.id = "charts";
    const heading = document.createElement("h2");
    heading.textContent = "Last 5 minutes";
    const hint = document.createElement("span");
    hint.className = "hint";
    hint.textContent = ` sampled from /metrics every ${EVERY_MS / 1000} s while this page is open`;
    heading.append(hint);
    this.lagSeconds = document.createElement("span");
    this.lagSeconds.id = "lag-seconds";
    this.lagSeconds.className = "hint";
    this.lag.legend.append(this.lagSeconds);
    const row = document.createElement("div");
    row.className = "chart-row";
    row.append(...this.charts.map((c) => c.element));
    this.element.append(heading, row);
    this.draw(Date.now());
  }

  /** Samples now and every few seconds until `stop`. */
  start(): void {
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    const message = await this.sample(now);
    if (this.stopped) return;
    for (const chart of this.charts) chart.note(message);
    this.draw(Date.now());
    // The next read is planned once this one ended, so a slow service is never read twice at once.
    this.timer = window.setTimeout(() => void this.tick(), EVERY_MS);
  }

  /** Reads /metrics and adds a point to each chart; why it could not ("" when it could). */
  private async sample(now: number): Promise<string> {
    let text: string;
    try {
      const response = await fetch(metricsUrl(), {
        headers: { authorization: `Bearer ${this.token}`, accept: "text/plain" },
        cache: "no-store",
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      if (!response.ok) {
        this.gap(now);
        return refusal(response.status);
      }
      text = await response.text();
    } catch {
      this.gap(now);
      return "No metrics: the service cannot be reached (it may be restarting); trying again.";
    }
    const samples = parseMetrics(text);
    // Every other outcome: refused by the rules, a conflict, the store unavailable, an error.
    const accepted = sum(samples, "orders_commands_total", { outcome: "accepted" });
    const counters: Counters = { t: now, accepted, refused: sum(samples, "orders_commands_total") - accepted };
    const before = this.previous;
    this.previous = counters;
    if (before) {
      const seconds = (counters.t - before.t) / 1000;
      this.push(this.points.commands, {
        t: now,
        values: [rate(before.accepted, counters.accepted, seconds), rate(before.refused, counters.refused, seconds)],
      });
    }
    const lagEvents = worst(samples, "orders_projector_lag_events");
    const lagSeconds = worst(samples, "orders_projector_lag_seconds");
    this.push(this.points.lag, { t: now, values: [lagEvents] });
    this.lagSeconds.textContent =
      lagSeconds === null ? "oldest unprojected event: age unknown" : `oldest unprojected: ${lagSeconds.toFixed(1)} s old`;
    this.push(this.points.subscribers, {
      t: now,
      values: [sum(samples, "orders_ws_connections"), sum(samples, "orders_ws_subscriptions")],
    });
    return "";
  }

  /** No numbers at `now`: each line breaks there, and the next rate starts afresh. */
  private gap(now: number): void {
    this.previous = null;
    this.lagSeconds.textContent = "";
    for (const points of Object.values(this.points)) this.push(points, { t: now, values: [null, null] });
  }

  private push(points: Point[], point: Point): void {
    points.push(point);
    while (points.length && points[0].t < point.t - WINDOW_MS) points.shift();
  }

  private draw(now: number): void {
    this.commands.render(this.points.commands, now);
    this.lag.render(this.points.lag, now);
    this.subscribers.render(this.points.subscribers, now);
  }
}
