// urql (with Graphcache, its persisted exchange and graphql-ws) against a running server, as a
// frontend uses it. Usage: node urql.mjs HTTP_URL WS_URL TOKEN SCHEMA_GRAPHQL_PATH
// Prints one JSON line per finding; exits 1 with {"error": ...} when one is not as it should be.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gql } from "@urql/core";
import { buildSchema, introspectionFromSchema } from "graphql";
import { createUrqlClient } from "./urql-client.mjs";
import { line, newId, ORDER_FIELDS, print, recordingFetch, waitFor } from "./lib.mjs";

const [httpUrl, wsUrl, token, schemaPath] = process.argv.slice(2);

const PLACE = gql`
  mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
      __typename
      ... on CommandAccepted { orderId version order { ${ORDER_FIELDS} } }
      ... on CommandError { code message }
    }
  }
`;
const PAY = gql`
  mutation TakePayment($input: TakePaymentInput!) {
    takePayment(input: $input) {
      __typename
      ... on CommandAccepted { version order { id status version } }
      ... on CommandError { code message }
    }
  }
`;
const ORDER = gql`
  query Order($id: ID!) { order(id: $id) { ${ORDER_FIELDS} } }
`;
const PENDING = gql`
  subscription PendingOrders($customerId: ID) {
    ordersUpdated(customerId: $customerId, status: PENDING) { id status version }
  }
`;

const ok = (result) => {
  if (result.error) throw new Error(`${result.operation.kind}: ${result.error.message}`);
  return result.data;
};

async function main() {
  const schema = introspectionFromSchema(buildSchema(readFileSync(schemaPath, "utf8")));
  const recorder = recordingFetch();
  const client = createUrqlClient({ httpUrl, wsUrl, token, schema, fetch: recorder.fetch });
  const customerId = newId("urql-customer");

  // 1. A mutation's order lands in the normalised cache: reading it asks the server nothing.
  const orderId = newId("urql");
  const placed = ok(
    await client.mutation(PLACE, { input: { orderId, customerId, items: [line("book", "12.50", 2)] } }),
  );
  assert.equal(placed.placeOrder.__typename, "CommandAccepted");
  const before = recorder.requests.length;
  const cached = ok(await client.query(ORDER, { id: orderId }));
  assert.equal(recorder.requests.length, before, "order(id) was fetched although the cache held it");
  assert.deepEqual(cached.order, placed.placeOrder.order);
  assert.equal(cached.order.status, "PENDING");
  print({ check: "placed_order_read_from_cache", order: cached.order });

  // 2. A watched order follows the next mutation's result in place, with no refetch.
  const seen = [];
  const watching = client.query(ORDER, { id: orderId }).subscribe((result) => {
    if (result.data?.order) seen.push(result.data.order.status);
  });
  await waitFor("the watched order", () => seen.length > 0);
  const paid = ok(
    await client.mutation(PAY, {
      input: { orderId, amount: "25.00", method: "card", transactionId: newId("t") },
    }),
  );
  assert.equal(paid.takePayment.order.status, "PAID");
  await waitFor("the watched order to become PAID", () => seen.at(-1) === "PAID");
  watching.unsubscribe();
  assert.ok(!recorder.requests.some((r) => r.operationName === "Order"), "an Order query was sent");
  print({ check: "watched_order_updated_in_place", statuses: seen });

  // 3. A live list of PENDING orders (over graphql-ws): placed orders join it, a paid one leaves it.
  const pending = new Map();
  const errors = [];
  const live = client.subscription(PENDING, { customerId }).subscribe((result) => {
    if (result.error) return errors.push(result.error.message);
    const pushed = result.data.ordersUpdated;
    if (pushed.status === "PENDING") pending.set(pushed.id, pushed);
    else pending.delete(pushed.id);
  });
  let listed;
  for (let attempt = 0; attempt < 10 && !listed; attempt += 1) {
    const id = newId("urql-live");
    ok(await client.mutation(PLACE, { input: { orderId: id, customerId, items: [line("pen", "3.00")] } }));
    listed = await waitFor(`${id} in the live list`, () => pending.has(id) && id, 1000).catch(() => undefined);
  }
  assert.deepEqual(errors, []);
  assert.ok(listed, "no placed order reached the live list");
  ok(
    await client.mutation(PAY, {
      input: { orderId: listed, amount: "3.00", method: "card", transactionId: newId("t") },
    }),
  );
  await waitFor(`${listed} to leave the live list`, () => !pending.has(listed));
  live.unsubscribe();
  print({ check: "paid_order_left_pending_list", orderId: listed });

  // 4. Automatic persisted queries: a new document's hash misses once, then hits.
  const STATS = gql`query Stats${Date.now()} { dashboardStats { totalOrders } }`;
  const start = recorder.requests.length;
  ok(await client.query(STATS, {}, { requestPolicy: "network-only" }));
  ok(await client.query(STATS, {}, { requestPolicy: "network-only" }));
  print({ check: "apq_requests", requests: recorder.requests.slice(start) });
  print({ check: "all_requests", requests: recorder.requests });
}

main().then(
  () => process.exit(0),
  (error) => {
    print({ error: error?.stack ?? String(error) });
    process.exit(1);
  },
);
