// A small typed client of the orders API: places an order, pays it, and prints its history with
// typed event payloads. Usage (after `npm run codegen && npx tsc`):
//   node dist/src/main.js http://127.0.0.1:8000/graphql TOKEN
import { Client, fetchExchange } from "@urql/core";
import { describe } from "./describe.js";
import { OrderHistory, PlaceOrder, TakePayment } from "./operations.js";

const [url = "http://127.0.0.1:8000/graphql", token = ""] = process.argv.slice(2);

const client = new Client({
  url,
  exchanges: [fetchExchange],
  fetchOptions: { headers: { authorization: `Bearer ${token}` } },
});

async function main(): Promise<void> {
  const placed = await client.mutation(PlaceOrder, {
    input: {
      customerId: "typed-client",
      items: [{ productId: "mug", name: "A mug", price: "7.50", qty: 2 }],
    },
  });
  const result = placed.data?.placeOrder;
  if (result?.__typename !== "CommandAccepted") {
    throw new Error(`not placed: ${placed.error?.message ?? JSON.stringify(result)}`);
  }
  const order = result.order;
  console.log(`placed ${order.id}: ${order.status}, ${order.itemCount} item(s), ${order.total}`);

  const paid = await client.mutation(TakePayment, {
    input: { orderId: order.id, amount: order.total, method: "card", transactionId: "t-typed" },
  });
  if (paid.data?.takePayment.__typename === "CommandAccepted") {
    console.log(`paid: ${paid.data.takePayment.order.status}`);
  }

  const history = await client.query(OrderHistory, { id: order.id }).toPromise();
  for (const event of history.data?.orderEvents ?? []) console.log(describe(event));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
