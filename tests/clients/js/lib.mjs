// What the Apollo Client and urql scripts share: the operations a frontend sends, a fetch that notes
// every request it passes on to the server (the real one, unchanged), and small helpers.
import { createHash, randomUUID } from "node:crypto";

export const print = (message) => process.stdout.write(JSON.stringify(message) + "\n");

export const sha256 = (text) => createHash("sha256").update(text).digest("hex");

export const newId = (prefix) => `${prefix}-${randomUUID().slice(0, 12)}`;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns something truthy, or fails after `ms` saying `what`. */
export async function waitFor(what, check, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A fetch that records each GraphQL request: method, operation, whether it carried the
 * document and/or a persisted-query hash, and the answer's HTTP status. */
export function recordingFetch() {
  const requests = [];
  const recorder = async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url ?? String(input));
    const method = (init.method ?? "GET").toUpperCase();
    let body;
    if (method === "GET") {
      body = Object.fromEntries(
        [...url.searchParams].map(([key, value]) => [
          key,
          key === "variables" || key === "extensions" ? JSON.parse(value) : value,
        ]),
      );
    } else {
      body = JSON.parse(init.body);
    }
    const entry = {
      method,
      operationName: body.operationName ?? null,
      query: typeof body.query === "string",
      hash: body.extensions?.persistedQuery?.sha256Hash ?? null,
    };
    const response = await fetch(input, init);
    entry.status = response.status;
    requests.push(entry);
    return response;
  };
  return { fetch: recorder, requests };
}

export const ORDER_FIELDS = `
  id
  customerId
  status
  total
  itemCount
  version
  items { productId name price qty }
`;

export const line = (productId, price, qty = 1) => ({ productId, name: `Item ${productId}`, price, qty });
