// The live operations dashboard: charts of the service's metrics, stats, the newest orders, an
// order's history, the projections.
// Plain DOM over the public GraphQL API (the way a customer's frontend would use it).
import "./dashboard.css";

import {
  Api,
  DASHBOARD_STATS,
  Forbidden,
  ORDER_EVENTS,
  ORDER_UPDATED,
  ORDERS,
  ORDERS_UPDATED,
  PROJECTIONS,
  staffRefusal,
  STATUSES,
  Unauthenticated,
  type ConnectionState,
  type OrderEvent,
  type OrderView,
  type Projection,
  type Stats,
} from "./api";
import { LiveCharts } from "./live-charts";

const TOKEN_KEY = "orders.dashboard.token";
const NEWEST = 20;
const PROJECTIONS_EVERY_MS = 2000;
const NOT_STAFF =
  "This page is for staff, and this token is not a staff token. Paste a staff token: " +
  "orders serve prints one at start, and orders token --role staff --sub you makes one.";

type Child = Node | string | null | undefined | false;

/** An element with attributes (`data-*`, `class`, ...) and children. */
function h(tag: string, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, value);
  for (const child of children) if (child) element.append(child);
  return element;
}

function money(value: string): string {
  return Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function time(iso: string): string {
  return new Date(iso).toLocaleTimeString();
}

const root = document.getElementById("dashboard");
if (!root) throw new Error("the page has no #dashboard element");
const app: HTMLElement = root;

/** The message for a token the service refused as staff's. */
function refusalMessage(error: Unauthenticated | Forbidden): string {
  return error instanceof Forbidden ? NOT_STAFF : `The token was refused: ${error.message}`;
}

function askForToken(message = ""): void {
  const input = h("input", {
    id: "token",
    type: "password",
    placeholder: "staff token (orders token --role staff --sub you)",
    autocomplete: "off",
    "aria-label": "Staff token",
  }) as HTMLInputElement;
  const button = h("button", { type: "submit" }, "Sign in") as HTMLButtonElement;
  const error = h("p", { id: "login-error", class: "error", role: "alert" }, message);
  const form = h(
    "form",
    { id: "login" },
    h("h1", {}, "Orders dashboard"),
    h("p", {}, "Paste a staff bearer token and press Enter. It is kept in this tab only (sessionStorage)."),
    error,
    input,
    button,
  );
  // The token is kept only once the service has taken it as staff's: a customer's token, or a
  // mistyped one, is forgotten with the message saying why.
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim().replace(/^Bearer\s+/i, "");
    if (!token) return;
    button.disabled = true;
    error.className = "hint";
    error.textContent = "Checking the token…";
    void staffRefusal(token).then((refusal) => {
      if (refusal) {
        sessionStorage.removeItem(TOKEN_KEY);
        askForToken(refusalMessage(refusal));
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      start(token);
    });
  });
  app.replaceChildren(form);
  input.focus();
}

function start(token: string): void {
  const connection = h("span", { id: "connection", "data-state": "connecting" }, "connecting");
  const signOut = h("button", { id: "sign-out", type: "button" }, "Sign out");
  const statsBox = h("section", { id: "stats" }, h("h2", {}, "Orders by status"));
  const ordersBody = h("tbody", { id: "orders-body" });
  const ordersBox = h(
    "section",
    { id: "orders" },
    h("h2", {}, "Newest orders"),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ...["Order", "Customer", "Status", "Items", "Total", "Updated"].map((t) => h("th", {}, t)))),
      ordersBody,
    ),
  );
  const detailBox = h("section", { id: "detail" }, h("h2", {}, "Order history"), h("p", { class: "hint" }, "Click an order."));
  const projectionsBox = h("section", { id: "projections" }, h("h2", {}, "Projections"));
  const errorLine = h("p", { id: "error", class: "error" });
  const charts = new LiveCharts(token);
  app.replaceChildren(
    h("header", {}, h("h1", {}, "Orders dashboard"), connection, signOut),
    errorLine,
    h("main", {}, charts.element, statsBox, ordersBox, detailBox, projectionsBox),
  );
  charts.start();

  const orders = new Map<string, OrderView>();
  let selected: { id: string; stop: () => void } | null = null;
  let stopped = false;

  const showError = (error: Error): void => {
    if (error instanceof Unauthenticated || error instanceof Forbidden) {
      stop(refusalMessage(error));
      return;
    }
    errorLine.textContent = error.message;
  };
  const setState = (state: ConnectionState): void => {
    connection.dataset.state = state;
    connection.textContent = state;
    if (state === "connected") errorLine.textContent = "";
  };
  const api = new Api(token, setState, () => stop("The service closed the connection: the token expired or is not accepted. Sign in again."));
  const stop = (message: string): void => {
    if (stopped) return;
    stopped = true;
    api.dispose();
    charts.stop();
    clearInterval(projectionsTimer);
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken(message);
  };
  signOut.addEventListener("click", () => stop(""));

  const renderOrders = (): void => {
    const newest = [...orders.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, NEWEST);
    for (const id of orders.keys()) if (!newest.some((o) => o.id === id)) orders.delete(id);
    ordersBody.replaceChildren(
      ...newest.map((order) => {
        const row = h(
          "tr",
          { class: "order", "data-order-id": order.id, "data-status": order.status, "data-version": String(order.version) },
          h("td", { class: "id" }, order.id),
          h("td", {}, order.customerId),
          h("td", {}, h("span", { class: `status ${order.status}` }, order.status)),
          h("td", { class: "num" }, String(order.itemCount)),
          h("td", { class: "num" }, money(order.total)),
          h("td", {}, time(order.updatedAt)),
        );
        if (selected?.id === order.id) row.classList.add("selected");
        row.addEventListener("click", () => select(order.id));
        return row;
      }),
    );
  };
  const upsert = (order: OrderView): void => {
    const known = orders.get(order.id);
    if (known && known.version > order.version) return; // an older view arriving late
    orders.set(order.id, order);
    renderOrders();
  };

  const renderStats = (stats: Stats): void => {
    const most = Math.max(1, ...stats.byStatus.map((s) => s.count));
    const byStatus = new Map(stats.byStatus.map((s) => [s.status, s]));
    statsBox.replaceChildren(
      h("h2", {}, "Orders by status"),
      h("p", { class: "total" }, "Total ", h("strong", { id: "total-orders" }, String(stats.totalOrders))),
      h(
        "table",
        { class: "chart" },
        ...STATUSES.map((status) => {
          const row = byStatus.get(status) ?? { status, count: 0, revenue: "0" };
          const bar = h("div", { class: `bar ${status}` });
          bar.style.width = `${(100 * row.count) / most}%`;
          return h(
            "tr",
            { "data-status": status },
            h("th", {}, status),
            h("td", { class: "bar-cell" }, bar),
            h("td", { class: "num count", "data-testid": `count-${status}` }, String(row.count)),
            h("td", { class: "num revenue" }, money(row.revenue)),
          );
        }),
      ),
    );
  };

  const renderProjections = (projections: Projection[]): void => {
    projectionsBox.replaceChildren(
      h("h2", {}, "Projections"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ...["Name", "State", "Lag", "Position", "Parked", "Last error"].map((t) => h("th", {}, t)))),
        h(
          "tbody",
          {},
          ...projections.map((p) =>
            h(
              "tr",
              { class: "projection", "data-name": p.name, "data-state": p.state },
              h("td", {}, p.name),
              h("td", {}, h("span", { class: `state ${p.state}` }, p.state)),
              h("td", { class: "num" }, String(p.lag)),
              h("td", { class: "num" }, p.position ?? "–"),
              h("td", { class: "num" }, String(p.parked)),
              h("td", {}, p.lastError ?? ""),
            ),
          ),
        ),
      ),
    );
  };

  const select = (id: string): void => {
    selected?.stop();
    const events: OrderEvent[] = [];
    const list = h("ol", { id: "events" });
    const state = h("p", { id: "detail-state" });
    detailBox.replaceChildren(h("h2", {}, "Order history"), h("p", { class: "id" }, id), state, list);
    const stopEvents = api.subscribe(ORDER_EVENTS, { id }, ({ orderEvents: event }) => {
      if (events.some((known) => known.version === event.version)) return; // resent after a reconnect
      events.push(event);
      list.append(
        h(
          "li",
          { class: "event", "data-type": event.type, "data-version": String(event.version) },
          h("span", { class: "version" }, `v${event.version}`),
          h("strong", {}, event.type),
          h("span", { class: "when" }, time(event.occurredAt)),
          h("code", {}, JSON.stringify(event.data)),
        ),
      );
    }, showError);
    const stopOrder = api.subscribe(ORDER_UPDATED, { id }, ({ orderUpdated: order }) => {
      state.textContent = `${order.status} · ${money(order.total)} · version ${order.version}`;
      state.dataset.status = order.status;
      upsert(order);
    }, showError);
    selected = {
      id,
      stop: () => {
        stopEvents();
        stopOrder();
      },
    };
    renderOrders();
  };

  // What a subscription cannot replay is read again after every (re)connection.
  const resync = (): void => {
    api
      .query(ORDERS, { first: NEWEST })
      .then(({ orders: page }) => page.edges.forEach(({ node }) => upsert(node)))
      .catch(showError);
  };
  const pollProjections = (): void => {
    api.query(PROJECTIONS, {}).then(({ projections }) => renderProjections(projections)).catch(showError);
  };
  api.onConnected(() => {
    resync();
    pollProjections();
  });
  const projectionsTimer = setInterval(pollProjections, PROJECTIONS_EVERY_MS);
  api.subscribe(ORDERS_UPDATED, {}, ({ ordersUpdated }) => upsert(ordersUpdated), showError);
  api.subscribe(DASHBOARD_STATS, {}, ({ dashboardStats }) => renderStats(dashboardStats), showError);
}

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  void staffRefusal(saved).then((refusal) => {
    if (refusal) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(refusalMessage(refusal));
    } else {
      start(saved);
    }
  });
} else {
  askForToken();
}
