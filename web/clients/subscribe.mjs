// The graphql-ws reference client (the one Apollo Client, urql, Relay and GraphiQL use) against a
// running server. Usage: node subscribe.mjs WS_URL TOKEN QUERY VARIABLES_JSON COUNT
// Prints one JSON line per message: {"event":"connected"}, {"event":"next","payload":...},
// then {"event":"done"} after COUNT results, or {"event":"error",...} and exits 1.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, query, variablesJson, countText] = process.argv.slice(2);
const count = Number(countText);
const print = (message) => process.stdout.write(JSON.stringify(message) + "\n");

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  retryAttempts: 0,
  on: { connected: () => print({ event: "connected" }) },
});

const fail = (error) => {
  print({ event: "error", error: error instanceof Error ? error.message : String(error?.reason ?? error) });
  process.exit(1);
};

let received = 0;
try {
  for await (const result of client.iterate({ query, variables: JSON.parse(variablesJson) })) {
    print({ event: "next", payload: result });
    received += 1;
    if (received >= count) break;
  }
  print({ event: "done", received });
  await client.dispose();
  process.exit(received >= count ? 0 : 1);
} catch (error) {
  fail(error);
}
