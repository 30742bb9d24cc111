// A small typed GraphQL client over the public API: queries over HTTP, subscriptions over
// graphql-ws (graphql-transport-ws). Each operation is a document typed by its variables and data.
import { createClient, type Client } from "graphql-ws";

import { graphqlHttpUrl, graphqlWsUrl } from "./urls";

/** A GraphQL document with the types of its variables and its data. */
export interface Operation<TVars, TData> {
  readonly query: string;
  readonly _types?: { vars: TVars; data: TData };
}

export function operation<TVars, TData>(query: string): Operation<TVars, TData> {
  return { query };
}

export type Status = "PENDING" | "PAID" | "SHIPPED" | "CANCELLED";
export const STATUSES: Status[] = ["PENDING", "PAID", "SHIPPED", "CANCELLED"];

export interface OrderView {
  id: string;
  customerId: string;
  status: Status;
  total: string;
  itemCount: number;
  createdAt: string;
  updatedAt: string;
  version: number;
}

export interface Stats {
  totalOrders: number;
  byStatus: { status: Status; count: number; revenue: string }[];
}

export interface OrderEvent {
  id: string;
  type: string;
  version: number;
  position: string;
  occurredAt: string;
  data: unknown;
}

export interface Projection {
  name: string;
  position: string | null;
  lag: number;
  state: string;
  parked: number;
  lastError: string | null;
}

const ORDER_FIELDS = "id customerId status total itemCount createdAt updatedAt version";

export const ORDERS = operation<{ first: number }, { orders: { edges: { node: OrderView }[] } }>(
  `query Orders($first: Int) { orders(first: $first) { edges { node { ${ORDER_FIELDS} } } } }`,
);
export const PROJECTIONS = operation<Record<string, never>, { projections: Projection[] }>(
  "query Projections { projections { name position lag state parked lastError } }",
);
export const ORDERS_UPDATED = operation<Record<string, never>, { ordersUpdated: OrderView }>(
  `subscription OrdersUpdated { ordersUpdated { ${ORDER_FIELDS} } }`,
);
export const ORDER_UPDATED = operation<{ id: string }, { orderUpdated: OrderView }>(
  `subscription OrderUpdated($id: ID!) { orderUpdated(id: $id) { ${ORDER_FIELDS} } }`,
);
export const DASHBOARD_STATS = operation<Record<string, never>, { dashboardStats: Stats }>(
  "subscription Stats { dashboardStats { totalOrders byStatus { status count revenue } } }",
);
export const ORDER_EVENTS = operation<{ id: string }, { orderEvents: OrderEvent }>(
  "subscription Events($id: ID!) { orderEvents(id: $id) { id type version position occurredAt data } }",
);

/** The token was refused: the caller should ask for another. */
export class Unauthenticated extends Error {}

/** The token is valid but lacks the right (a customer's token on a staff page). */
export class Forbidden extends Error {}

/** A query only staff may run, to check a token before the page keeps it. */
export const STAFF_CHECK = operation<Record<string, never>, { dashboardStats: { totalOrders: number } }>(
  "query StaffCheck { dashboardStats { totalOrders } }",
);

export type ConnectionState = "connecting" | "connected" | "reconnecting";

interface GraphQLResult<TData> {
  data?: TData | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

type GraphQLError = NonNullable<GraphQLResult<unknown>["errors"]>[number];

function typedError(error: GraphQLError): Error {
  const code = error.extensions?.code;
  if (code === "UNAUTHENTICATED") return new Unauthenticated(error.message);
  if (code === "FORBIDDEN") return new Forbidden(error.message);
  return new Error(code ? `${error.message} (${code})` : error.message);
}

function firstError<TData>(result: GraphQLResult<TData>): Error | null {
  const error = result.errors?.[0];
  return error ? typedError(error) : null;
}

/** What graphql-ws hands a sink's `error`: an Error, the GraphQL errors, or the close event. */
function socketError(error: unknown): Error {
  if (error instanceof Error) return error;
  if (Array.isArray(error) && error.length > 0) return typedError(error[0] as GraphQLError);
  if (error && typeof error === "object" && "code" in error) {
    const close = error as { code: number; reason?: string };
    return new Error(`the connection closed (${close.code}${close.reason ? `: ${close.reason}` : ""})`);
  }
  return new Error("the subscription failed");
}

/**
 * Why `token` cannot open a staff page, or null when it can (or when the service cannot say now:
 * the page's own reconnecting takes over then).
 */
export async function staffRefusal(token: string): Promise<Unauthenticated | Forbidden | null> {
  let result: GraphQLResult<unknown>;
  try {
    const response = await fetch(graphqlHttpUrl(), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json",
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query: STAFF_CHECK.query }),
    });
    result = (await response.json()) as GraphQLResult<unknown>;
  } catch {
    return null;
  }
  const error = firstError(result);
  return error instanceof Unauthenticated || error instanceof Forbidden ? error : null;
}

export class Api {
  private readonly ws: Client;

  constructor(
    private readonly token: string,
    onState: (state: ConnectionState) => void,
    onUnauthenticated: () => void,
  ) {
    let everConnected = false;
    this.ws = createClient({
      url: graphqlWsUrl(),
      connectionParams: () => ({ authorization: `Bearer ${this.token}` }),
      lazy: false,
      keepAlive: 10_000,
      // Reconnect for as long as the page is open: a restarting service comes back.
      retryAttempts: Number.POSITIVE_INFINITY,
      shouldRetry: (event) => (event as CloseEvent | undefined)?.code !== 4403,
      retryWait: async (retries) => {
        await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** retries, 3000)));
      },
      on: {
        connecting: () => onState(everConnected ? "reconnecting" : "connecting"),
        connected: () => {
          everConnected = true;
          onState("connected");
        },
        closed: (event) => {
          if ((event as CloseEvent).code === 4403) onUnauthenticated();
          else onState("reconnecting");
        },
      },
    });
  }

  async query<TVars, TData>(op: Operation<TVars, TData>, variables: TVars): Promise<TData> {
    const response = await fetch(graphqlHttpUrl(), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json",
        authorization: `Bearer ${this.token}`,
      },
      body: JSON.stringify({ query: op.query, variables }),
    });
    const result = (await response.json()) as GraphQLResult<TData>;
    const error = firstError(result);
    if (error) throw error;
    if (!result.data) throw new Error(`no data (HTTP ${response.status})`);
    return result.data;
  }

  /** Calls `onData` with each result until the returned function is called. */
  subscribe<TVars, TData>(
    op: Operation<TVars, TData>,
    variables: TVars,
    onData: (data: TData) => void,
    onError: (error: Error) => void,
  ): () => void {
    return this.ws.subscribe<TData>(
      { query: op.query, variables: variables as Record<string, unknown> },
      {
        next: (result) => {
          const error = firstError(result as GraphQLResult<TData>);
          if (error) onError(error);
          else if (result.data) onData(result.data as TData);
        },
        error: (error) => onError(socketError(error)),
        complete: () => undefined,
      },
    );
  }

  /** Runs `listener` after every (re)connection, so callers can resync what they missed. */
  onConnected(listener: () => void): void {
    this.ws.on("connected", listener);
  }

  dispose(): void {
    void this.ws.dispose();
  }
}
