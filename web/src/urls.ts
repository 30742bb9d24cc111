// The endpoint this page was served beside, over HTTP and as a websocket.
export function graphqlHttpUrl(): string {
  return new URL("/graphql", window.location.href).toString();
}

export function graphqlWsUrl(): string {
  const url = new URL("/graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}
