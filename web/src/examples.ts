// The operations GraphiQL opens with, so a newcomer can press Run on each tab as it is: place an
// order, list the newest orders, watch that order change live. The documents and variables are
// files of their own so the end-to-end tests send exactly what the page shows.
import ordersQuery from "./examples/Orders.graphql";
import ordersVariables from "./examples/Orders.json";
import orderUpdatedQuery from "./examples/OrderUpdated.graphql";
import orderUpdatedVariables from "./examples/OrderUpdated.json";
import placeOrderQuery from "./examples/PlaceOrder.graphql";
import placeOrderVariables from "./examples/PlaceOrder.json";

function tab(query: string, variables: unknown): { query: string; variables: string } {
  return { query, variables: JSON.stringify(variables, null, 2) };
}

export const EXAMPLE_TABS: { query: string; variables: string }[] = [
  tab(placeOrderQuery, placeOrderVariables),
  tab(ordersQuery, ordersVariables),
  tab(orderUpdatedQuery, orderUpdatedVariables),
];
