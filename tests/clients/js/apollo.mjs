// Apollo Client (with graphql-ws and its persisted-queries link) against a running server, as a
// frontend uses it. Usage: node apollo.mjs HTTP_URL WS_URL TOKEN
// Prints one JSON line per finding; exits 1 with {"error": ...} when one is not as it should be.
import assert from "node:assert/strict";
import { gql } from "@apollo/client";
import { createApolloClient } from "./apollo-client.mjs";
import { line, newId, ORDER_FIELDS, print, recordingFetch, waitFor } from "./lib.mjs";

const [httpUrl, wsUrl, token] = process.argv.slice(2);

const PLACE = gql`
  mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
      __typename
      ... on CommandAccepted { orderId version order { ${ORDER_FIELDS} } }
    }
  }
`;
const PAY = gql`
  mutation TakePayment($input: TakePaymentInput!) {
    takePayment(input: $input) {
      __typename
      ... on CommandAccepted { version order { id status version } }
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

async function main() {
  const recorder = recordingFetch();
  const client = createApolloClient({ httpUrl, wsUrl, token, fetch: recorder.fetch });
  const customerId = newId("apollo-customer");

  // 1. A mutation's order lands in the normalised cache: reading it asks the server nothing.
  const orderId = newId("apollo");
  const placed = await client.mutate({
    mutation: PLACE,
    variables: { input: { orderId, customerId, items: [line("book", "12.50", 2)] } },
  });
  assert.equal(placed.data.placeOrder.__typename, "CommandAccepted");
  const before = recorder.requests.length;
  const cached = await client.query({ query: ORDER, variables: { id: orderId } });
  assert.equal(recorder.requests.length, before, "order(id) was fetched although the cache held it");
  assert.deepEqual(cached.data.order, placed.data.placeOrder.order);
  assert.equal(cached.data.order.status, "PENDING");
  print({ check: "placed_order_read_from_cache", order: cached.data.order });

  // 2. A watched order follows the next mutation's result in place, with no refetch.
  const seen = [];
  const watching = client.watchQuery({ query: ORDER, variables: { id: orderId } }).subscribe({
    next: ({ data }) => data?.order && seen.push(data.order.status),
  });
  await waitFor("the watched order", () => seen.length > 0);
  const paid = await client.mutate({
    mutation: PAY,
    variables: { input: { orderId, amount: "25.00", method: "card", transactionId: newId("t") } },
  });
  assert.equal(paid.data.takePayment.order.status, "PAID");
  await waitFor("the watched order to become PAID", () => seen.at(-1) === "PAID");
  watching.unsubscribe();
  assert.ok(!recorder.requests.some((r) => r.operationName === "Order"), "an Order query was sent");
  print({ check: "watched_order_updated_in_place", statuses: seen });

  // 3. A live list of PENDING orders: placed orders join it, a paid one leaves it.
  const pending = new Map();
  const live = client.subscribe({ query: PENDING, variables: { customerId } }).subscribe({
    next: ({ data }) => {
      const order = data.ordersUpdated;
      if (order.status === "PENDING") pending.set(order.id, order);
      else pending.delete(order.id);
    },
    error: (error) => print({ error: `subscription: ${error.message}` }),
  });
  // The subscription starts on the server a moment after subscribe(): place until one shows.
  let listed;
  for (let attempt = 0; attempt < 10 && !listed; attempt += 1) {
    const id = newId("apollo-live");
    await client.mutate({
      mutation: PLACE,
      variables: { input: { orderId: id, customerId, items: [line("pen", "3.00")] } },
    });
    listed = await waitFor(`${id} in the live list`, () => pending.has(id) && id, 1000).catch(() => undefined);
  }
  assert.ok(listed, "no placed order reached the live list");
  await client.mutate({
    mutation: PAY,
    variables: { input: { orderId: listed, amount: "3.00", method: "card", transactionId: newId("t") } },
  });
  await waitFor(`${listed} to leave the live list`, () => !pending.has(listed));
  live.unsubscribe();
  print({ check: "paid_order_left_pending_list", orderId: listed });

  // 4. Automatic persisted queries: a new document's hash misses once, then hits.
  const STATS = gql`query Stats${Date.now()} { dashboardStats { totalOrders } }`;
  const start = recorder.requests.length;
  await client.query({ query: STATS, fetchPolicy: "network-only" });
  await client.query({ query: STATS, fetchPolicy: "network-only" });
  const apq = recorder.requests.slice(start);
  print({ check: "apq_requests", requests: apq });
  print({ check: "all_requests", requests: recorder.requests });

  await client.stop?.();
}

main().then(
  () => process.exit(0),
  (error) => {
    print({ error: error?.stack ?? String(error) });
    process.exit(1);
  },
);
