// Apollo Client as a frontend sets it up for this API (README "Clients" shows this file): HTTP for
// queries and mutations, graphql-ws for subscriptions, automatic persisted queries (hash first; the
// websocket link always sends the document too), and a cache that finds an order by id without
// asking the server again.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import { createHash } from "node:crypto"; // in a browser: `sha256` from "crypto-hash"
import WebSocket from "ws"; // in a browser: leave webSocketImpl out

export function createApolloClient({ httpUrl, wsUrl, token, fetch = globalThis.fetch }) {
  const http = new HttpLink({ uri: httpUrl, fetch, headers: { authorization: `Bearer ${token}` } });
  const ws = new GraphQLWsLink(
    createClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
    }),
  );
  const isSubscription = ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === "OperationDefinition" && definition.operation === "subscription";
  };
  const persisted = new PersistedQueryLink({
    sha256: (document) => createHash("sha256").update(document).digest("hex"),
    useGETForHashedQueries: true, // queries by hash over GET: short, cacheable URLs
  });
  return new ApolloClient({
    link: ApolloLink.from([persisted, ApolloLink.split(isSubscription, ws, http)]),
    cache: new InMemoryCache({
      typePolicies: {
        Query: {
          fields: {
            // order(id) is the Order the cache may already hold (e.g. from a mutation's result).
            order: { read: (_, { args, toReference }) => toReference({ __typename: "Order", id: args.id }) },
          },
        },
      },
    }),
  });
}
