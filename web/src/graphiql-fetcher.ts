// GraphiQL's fetcher: queries and mutations over HTTP, subscriptions over graphql-ws
// (graphql-transport-ws), each with the token of its tab or, when the tab's is blank, the last
// one typed.
import { createGraphiQLFetcher, type Fetcher } from "@graphiql/toolkit";
import { Kind, parse, type DocumentNode } from "graphql";
import { createClient, type Client } from "graphql-ws";

import { authorizationOf, type TokenState } from "./graphiql-token";
import { graphqlHttpUrl, graphqlWsUrl } from "./urls";

// One websocket per token: GraphiQL hands the headers to every fetch, and the socket must
// authenticate with the same token in connection_init.
let socket: { authorization: string; client: Client } | null = null;

function wsClientFor(authorization: string): Client {
  if (socket && socket.authorization === authorization) return socket.client;
  void socket?.client.dispose();
  const client = createClient({
    url: graphqlWsUrl(),
    connectionParams: { authorization },
    lazy: true,
    retryAttempts: 5,
  });
  socket = { authorization, client };
  return client;
}

/**
 * The document and operation GraphiQL asks to run, as the query text says. GraphiQL parses a
 * tab's document a moment after the tab is opened, so Run pressed at once would hand over the old
 * tab's parsed document and operation name with the new tab's text: the server would answer
 * "Unknown operation", or a subscription would go over HTTP instead of the websocket.
 */
function asWritten(
  query: string,
  operationName: string | null | undefined,
): { documentAST: DocumentNode; operationName: string | null | undefined } | null {
  let documentAST: DocumentNode;
  try {
    documentAST = parse(query);
  } catch {
    return null; // the server explains the syntax error
  }
  const names = documentAST.definitions.flatMap((definition) =>
    definition.kind === Kind.OPERATION_DEFINITION ? [definition.name?.value] : [],
  );
  if (operationName && !names.includes(operationName) && names.length === 1) {
    return { documentAST, operationName: names[0] ?? null };
  }
  return { documentAST, operationName };
}

/** The fetcher for the page, sending the tab's token or else the last one `token` holds. */
export function pageFetcher(token: TokenState): Fetcher {
  return (params, options) => {
    const own = authorizationOf(options?.headers);
    token.offer(own);
    const authorization = own || token.authorization;
    const headers: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(options?.headers ?? {})) {
      if (name.toLowerCase() !== "authorization") headers[name] = value;
    }
    if (authorization) headers.Authorization = authorization;
    const inner = createGraphiQLFetcher({ url: graphqlHttpUrl(), wsClient: wsClientFor(authorization) });
    const written = asWritten(params.query, params.operationName);
    if (!written) return inner(params, { ...options, headers });
    return inner(
      { ...params, operationName: written.operationName },
      { ...options, headers, documentAST: written.documentAST },
    );
  };
}
