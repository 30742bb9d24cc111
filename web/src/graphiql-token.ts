// The bearer token GraphiQL sends. Headers are per tab; the token typed into any tab's headers
// editor also serves the tabs whose Authorization is still the blank "Bearer " they opened with,
// and setting it (or changing it) is what loads the schema for the docs and autocompletion.

/** The Authorization value of a headers object, whatever the header's case; "" without one. */
export function authorizationOf(headers: Record<string, unknown> | undefined): string {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.toLowerCase() === "authorization" && typeof value === "string") {
      return normalised(value);
    }
  }
  return "";
}

/** The Authorization value in the headers editor's text; "" while it is not JSON or blank. */
export function authorizationIn(headersText: string): string {
  try {
    const parsed: unknown = JSON.parse(headersText || "{}");
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      return authorizationOf(parsed as Record<string, unknown>);
    }
  } catch {
    // Half-typed JSON: the token is not there yet.
  }
  return "";
}

/** The headers editor's text with `authorization` in place of its (blank) Authorization; the text
 * as it was while it is not a JSON object. */
export function withAuthorization(headersText: string, authorization: string): string {
  let headers: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(headersText || "{}");
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return headersText;
    headers = parsed as Record<string, unknown>;
  } catch {
    return headersText;
  }
  const others = Object.entries(headers).filter(([name]) => name.toLowerCase() !== "authorization");
  return JSON.stringify({ Authorization: authorization, ...Object.fromEntries(others) }, null, 2);
}

// "Bearer " alone is the placeholder; a bare JWT pasted over the whole value gets its scheme.
function normalised(value: string): string {
  const trimmed = value.trim();
  if (/^(bearer)?$/i.test(trimmed)) return "";
  if (/^[\w-]+\.[\w-]+\.[\w-]*$/.test(trimmed)) return `Bearer ${trimmed}`;
  return trimmed;
}

type Listener = (authorization: string) => void;

/** The last token typed into any tab, and who wants to know when it changes. */
export class TokenState {
  private current = "";
  private readonly listeners = new Set<Listener>();

  get authorization(): string {
    return this.current;
  }

  /** Notes a tab's Authorization; a blank one leaves the last token in place. */
  offer(authorization: string): void {
    if (!authorization || authorization === this.current) return;
    this.current = authorization;
    for (const listener of this.listeners) listener(authorization);
  }

  /** Tells the listeners again (the schema re-fetched by hand); nothing without a token. */
  refresh(): void {
    if (!this.current) return;
    for (const listener of this.listeners) listener(this.current);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
