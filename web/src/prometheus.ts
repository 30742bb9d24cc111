// A reader of the Prometheus text format, for the few families the dashboard charts. It keeps
// every sample line (name, labels, value) and skips comments; histograms and summaries come
// through as their plain `_bucket`/`_sum`/`_count` samples, which the charts do not read.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** `name{labels} value [timestamp]`; label values are quoted with \\, \" and \n escaped. */
const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/y;

function unescape(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const match = LABEL.exec(text);
    if (!match) break;
    labels[match[1]] = unescape(match[2]);
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(text); // "NaN" and anything unreadable become NaN
}

/** Every sample of an exposition, in order. Lines it cannot read are skipped. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    samples.push({ name: match[1], labels: parseLabels(match[2] ?? ""), value: parseValue(match[3]) });
  }
  return samples;
}

/** The samples named `name` whose labels include `where`. */
export function select(samples: Sample[], name: string, where: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(where).every(([key, value]) => s.labels[key] === value),
  );
}

/** The sum of the samples named `name` (0 when there are none), ignoring NaN. */
export function sum(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  return select(samples, name, where).reduce((total, s) => (Number.isNaN(s.value) ? total : total + s.value), 0);
}
