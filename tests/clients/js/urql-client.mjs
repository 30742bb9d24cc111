// urql as a frontend sets it up for this API (README "Clients" shows this file): Graphcache's
// normalised cache, automatic persisted queries for queries and mutations, and graphql-ws for
// subscriptions (its client sends every subscription's document: it refuses a payload without one).
import { Client, fetchExchange, subscriptionExchange } from "@urql/core";
import { cacheExchange } from "@urql/exchange-graphcache";
import { persistedExchange } from "@urql/exchange-persisted";
import { createClient } from "graphql-ws";
import WebSocket from "ws"; // in a browser: leave webSocketImpl out

// `schema`: the introspection of schema.graphql (graphql's introspectionFromSchema, or codegen's
// introspection plugin), so Graphcache matches fragments on unions and interfaces exactly.
export function createUrqlClient({ httpUrl, wsUrl, token, schema, fetch = globalThis.fetch }) {
  const ws = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
  });
  return new Client({
    url: httpUrl,
    fetch,
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    exchanges: [
      cacheExchange({
        schema,
        // Types without an id are embedded in their parent.
        keys: { CommandAccepted: () => null, LineItem: () => null, DashboardStats: () => null },
        // order(id) is the Order the cache may already hold (e.g. from a mutation's result).
        resolvers: { Query: { order: (_, args) => ({ __typename: "Order", id: args.id }) } },
      }),
      persistedExchange({
        preferGetForPersistedQueries: true, // queries by hash over GET
        enableForMutation: true,
      }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: ws.subscribe(request, sink) }),
        }),
      }),
    ],
  });
}
