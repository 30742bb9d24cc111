// GraphiQL served by the service itself: queries and mutations over HTTP, subscriptions over
// graphql-ws (graphql-transport-ws), the bearer token taken from the headers editor.
import { createGraphiQLFetcher, type Fetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/graphiql.css";
import { createClient, type Client } from "graphql-ws";
import { createRoot } from "react-dom/client";

import { EXAMPLE_TABS } from "./examples";
import { graphqlHttpUrl, graphqlWsUrl } from "./urls";

const DEFAULT_HEADERS = JSON.stringify({ Authorization: "Bearer " }, null, 2);

// One websocket per token: GraphiQL hands the headers to every fetch, and the socket must
// authenticate with the same token in connection_init.
let socket: { authorization: string; client: Client } | null = null;

function wsClientFor(authorization: string): Client {
  if (socket && socket.authorization === authorization) return socket.client;
  socket?.client.dispose();
  const client = createClient({
    url: graphqlWsUrl(),
    connectionParams: { authorization },
    lazy: true,
    retryAttempts: 5,
  });
  socket = { authorization, client };
  return client;
}

function authorizationOf(headers: Record<string, unknown> | undefined): string {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.toLowerCase() === "authorization" && typeof value === "string") return value;
  }
  return "";
}

// Headers are per tab; a token typed into one tab also serves the tabs whose Authorization is
// still the blank "Bearer " they opened with.
let lastAuthorization = "";

const fetcher: Fetcher = (params, options) => {
  let authorization = authorizationOf(options?.headers).trim();
  if (/^(Bearer)?$/i.test(authorization)) authorization = lastAuthorization;
  else lastAuthorization = authorization;
  const headers: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options?.headers ?? {})) {
    if (name.toLowerCase() !== "authorization") headers[name] = value;
  }
  if (authorization) headers.Authorization = authorization;
  const inner = createGraphiQLFetcher({
    url: graphqlHttpUrl(),
    wsClient: wsClientFor(authorization),
  });
  return inner(params, { ...options, headers });
};

function App() {
  return (
    <GraphiQL
      fetcher={fetcher}
      defaultTabs={EXAMPLE_TABS.map((tab) => ({ ...tab, headers: DEFAULT_HEADERS }))}
      defaultHeaders={DEFAULT_HEADERS}
      defaultEditorToolsVisibility="headers"
      isHeadersEditorEnabled
      shouldPersistHeaders={false}
    />
  );
}

const root = document.getElementById("graphiql");
if (!root) throw new Error("the page has no #graphiql element");
createRoot(root).render(<App />);
