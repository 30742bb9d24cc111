// The operations GraphiQL opens with, so a newcomer can press Run: place an order, list the
// newest orders, and watch one order change live.
export const EXAMPLE_TABS: { query: string; variables: string }[] = [
  {
    query: `# Place an order (staff may place for any customer). Then copy its orderId
# into the orderUpdated tab and watch it change.
mutation PlaceOrder($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    __typename
    ... on CommandAccepted { orderId version position }
    ... on CommandError { code message }
  }
}
`,
    variables: JSON.stringify(
      {
        input: {
          customerId: "customer-1",
          items: [{ productId: "book-1", name: "A book", price: "12.50", qty: 2 }],
        },
      },
      null,
      2,
    ),
  },
  {
    query: `# The newest orders (the read model).
query Orders {
  orders(first: 10) {
    edges { node { id customerId status total itemCount updatedAt } }
    pageInfo { hasNextPage endCursor }
  }
}
`,
    variables: "{}",
  },
  {
    query: `# One order, live: its current view first, then every change.
subscription OrderUpdated($id: ID!) {
  orderUpdated(id: $id) { id status total version updatedAt }
}
`,
    variables: JSON.stringify({ id: "paste-an-order-id" }, null, 2),
  },
];
