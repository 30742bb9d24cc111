// Typed event payloads: one member per event type, so a switch on __typename narrows each one and
// tsc proves every type is handled (a new member in the schema fails the build here).
import type { OrderHistoryQuery } from "./gql/graphql.js";

export type OrderEvent = OrderHistoryQuery["orderEvents"][number];

export function describe(event: OrderEvent): string {
  const payload = event.payload;
  switch (payload.__typename) {
    case "OrderPlacedData":
      return `v${event.version} placed for ${payload.customerId}: ${payload.items.length} line(s), ${payload.total}`;
    case "PaymentTakenData":
      return `v${event.version} paid ${payload.amount} by ${payload.method}`;
    case "OrderShippedData":
      return `v${event.version} shipped with ${payload.carrier} (${payload.trackingId})`;
    case "OrderCancelledData":
      return `v${event.version} cancelled: ${payload.reason}`;
    case "ItemAddedData":
      return `v${event.version} added ${payload.item.qty} x ${payload.item.name}, now ${payload.total}`;
    case "ItemRemovedData":
      return `v${event.version} removed ${payload.productId}, now ${payload.total}`;
    case "UnknownEventData":
      return `v${event.version} ${event.type}: ${JSON.stringify(payload.data)}`;
    default: {
      const unhandled: never = payload;
      return unhandled;
    }
  }
}
