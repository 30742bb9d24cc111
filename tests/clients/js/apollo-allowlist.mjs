// Persisted queries as a production allow-list, Apollo's way: generate-persisted-query-manifest
// writes the manifest of the app's operations, the server runs those alone
// (PERSISTED_QUERIES=only), and Apollo Client sends each operation's manifest id.
// Usage: node apollo-allowlist.mjs manifest OUT_JSON
//        node apollo-allowlist.mjs run HTTP_URL TOKEN MANIFEST_JSON
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { generatePersistedQueryManifest } from "@apollo/generate-persisted-query-manifest";
import { generatePersistedQueryIdsFromManifest } from "@apollo/persisted-query-lists";
import { line, newId, print, recordingFetch } from "./lib.mjs";

const [command, ...args] = process.argv.slice(2);

async function manifest([out]) {
  const generated = await generatePersistedQueryManifest({ documents: ["allowlist/*.graphql"] }, undefined);
  writeFileSync(out, JSON.stringify(generated, null, 2));
  print({ check: "manifest", operations: generated.operations.map(({ name, type }) => ({ name, type })) });
}

async function run([httpUrl, token, manifestPath]) {
  const headers = { authorization: `Bearer ${token}` };
  const recorder = recordingFetch();
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: new PersistedQueryLink(
      generatePersistedQueryIdsFromManifest({
        loadManifest: () => JSON.parse(readFileSync(manifestPath, "utf8")),
      }),
    ).concat(new HttpLink({ uri: httpUrl, headers, fetch: recorder.fetch })),
  });
  const document = (file) => gql(readFileSync(`allowlist/${file}`, "utf8"));

  const stats = await client.query({ query: document("stats.graphql") });
  assert.equal(typeof stats.data.dashboardStats.totalOrders, "number");
  const orderId = newId("allowed");
  const placed = await client.mutate({
    mutation: document("place-order.graphql"),
    variables: { input: { orderId, customerId: "c-allowed", items: [line("cup", "4.00")] } },
  });
  assert.equal(placed.data.placeOrder.order.id, orderId);
  print({ check: "listed_by_id", requests: recorder.requests, order: placed.data.placeOrder.order });

  // Anything else, sent as a document by a client without the list, is refused.
  const plain = new ApolloClient({
    cache: new InMemoryCache(),
    link: new HttpLink({ uri: httpUrl, headers }),
  });
  const refused = await plain
    .query({ query: gql`query NotListed { dashboardStats { totalOrders } }` })
    .then(() => undefined, (error) => error);
  assert.ok(refused, "an unlisted query ran");
  print({ check: "unlisted_refused", codes: refused.errors?.map((error) => error.extensions?.code) ?? [refused.message] });
}

(command === "manifest" ? manifest(args) : run(args)).then(
  () => process.exit(0),
  (error) => {
    print({ error: error?.stack ?? String(error) });
    process.exit(1);
  },
);
