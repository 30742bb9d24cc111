// graphql-http's GraphQL-over-HTTP audit against a running server.
// Usage: node audit.mjs URL TOKEN; prints one JSON object {ok, warn, error, results}.
import { auditServer } from "graphql-http";

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node audit.mjs URL TOKEN");
  process.exit(2);
}

// Every request to the service needs a token; the audit's own requests get the staff one.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
const summary = { ok: 0, warn: 0, error: 0, results: [] };
for (const result of results) {
  summary[result.status] += 1;
  if (result.status !== "ok") {
    let body = null;
    try {
      body = await result.response.text();
    } catch {
      body = null;
    }
    summary.results.push({
      id: result.id,
      status: result.status,
      name: result.name,
      reason: result.reason,
      responseStatus: result.response.status,
      body,
    });
  }
}
console.log(JSON.stringify(summary, null, 2));
