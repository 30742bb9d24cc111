// The schema GraphiQL shows in Docs and completes with, fetched by this page (not by GraphiQL)
// once there is a token: introspection needs one, and GraphiQL's own attempt on load would only
// put a 401 in the result pane before anything was run.
import { buildClientSchema, getIntrospectionQuery, type GraphQLSchema, type IntrospectionQuery } from "graphql";

import { graphqlHttpUrl } from "./urls";

interface IntrospectionResult {
  data?: IntrospectionQuery | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** The served schema as `authorization` may see it; throws with the server's reason if refused. */
export async function fetchSchema(authorization: string, signal: AbortSignal): Promise<GraphQLSchema> {
  const response = await fetch(graphqlHttpUrl(), {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/graphql-response+json, application/json",
      authorization,
    },
    body: JSON.stringify({ query: getIntrospectionQuery({ inputValueDeprecation: true }), operationName: "IntrospectionQuery" }),
    signal,
  });
  const result = (await response.json()) as IntrospectionResult;
  if (!result.data) {
    const error = result.errors?.[0];
    throw new Error(error ? `${error.extensions?.code ?? "ERROR"}: ${error.message}` : `HTTP ${response.status}`);
  }
  return buildClientSchema(result.data);
}
