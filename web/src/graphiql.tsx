// GraphiQL served by the service itself: queries and mutations over HTTP, subscriptions over
// graphql-ws (graphql-transport-ws), the bearer token taken from the headers editor, which is
// open on load so the token has a visible place.
import { useEditorContext } from "@graphiql/react";
import { GraphiQL, GraphiQLInterface, GraphiQLProvider } from "graphiql";
import "graphiql/graphiql.css";
import type { GraphQLSchema } from "graphql";
import { useCallback, useEffect, useRef, useState } from "react";
import { createRoot } from "react-dom/client";

import { EXAMPLE_TABS } from "./examples";
import "./graphiql-page.css";
import { pageFetcher } from "./graphiql-fetcher";
import { fetchSchema } from "./graphiql-schema";
import { authorizationIn, TokenState, withAuthorization } from "./graphiql-token";

const DEFAULT_HEADERS = JSON.stringify({ Authorization: "Bearer " }, null, 2);
// Typing a token fires an edit per key: ask for the schema once the typing stops.
const SCHEMA_AFTER_MS = 300;
const REFETCH_LABEL = "Re-fetch GraphQL schema";

const token = new TokenState();

const fetcher = pageFetcher(token);

type SchemaState =
  | { kind: "waiting" }
  | { kind: "loading" }
  | { kind: "loaded"; schema: GraphQLSchema }
  | { kind: "refused"; reason: string };

/** The schema for the last token typed: fetched again whenever the token changes. */
function useSchemaForToken(): SchemaState {
  const [state, setState] = useState<SchemaState>({ kind: "waiting" });
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight: AbortController | undefined;
    const unsubscribe = token.subscribe((authorization) => {
      clearTimeout(timer);
      inFlight?.abort();
      timer = setTimeout(() => {
        const controller = new AbortController();
        inFlight = controller;
        setState({ kind: "loading" });
        fetchSchema(authorization, controller.signal).then(
          (schema) => setState({ kind: "loaded", schema }),
          (error: unknown) => {
            if (controller.signal.aborted) return;
            setState({ kind: "refused", reason: error instanceof Error ? error.message : String(error) });
          },
        );
      }, SCHEMA_AFTER_MS);
    });
    // GraphiQL's own re-fetch (the button, Shift-Ctrl-R) does nothing while the page holds the
    // schema, so both ask this hook instead.
    const onClick = (event: MouseEvent): void => {
      if (event.target instanceof Element && event.target.closest(`[aria-label="${REFETCH_LABEL}"]`)) {
        token.refresh();
      }
    };
    const onKey = (event: KeyboardEvent): void => {
      if (event.ctrlKey && event.key === "R") token.refresh();
    };
    document.addEventListener("click", onClick);
    window.addEventListener("keydown", onKey);
    return () => {
      unsubscribe();
      clearTimeout(timer);
      inFlight?.abort();
      document.removeEventListener("click", onClick);
      window.removeEventListener("keydown", onKey);
    };
  }, []);
  return state;
}

/**
 * Puts the active tab's variables into the editors once they exist. GraphiQL fills the variables
 * editor on load from its own storage, not from the tab, so in a fresh browser the first tab
 * would open with no variables and fail when run.
 */
function ActiveTabInEditors(): null {
  const { tabs, activeTabIndex, queryEditor, variableEditor, headerEditor } = useEditorContext({
    nonNull: true,
  });
  const done = useRef(false);
  useEffect(() => {
    if (done.current || !queryEditor || !variableEditor || !headerEditor) return;
    done.current = true;
    const tab = tabs[activeTabIndex];
    if (!tab) return;
    for (const [editor, value] of [
      [queryEditor, tab.query],
      [variableEditor, tab.variables],
      [headerEditor, tab.headers],
    ] as const) {
      if (value != null && editor.getValue() !== value) editor.setValue(value);
    }
  }, [tabs, activeTabIndex, queryEditor, variableEditor, headerEditor]);
  return null;
}

/**
 * Shows the token in every tab opened after it was typed: a tab whose Authorization is still blank
 * gets it in its headers editor, so what the request will carry is what the page shows.
 */
function TokenInEveryTab(): null {
  const { activeTabIndex, headerEditor } = useEditorContext({ nonNull: true });
  useEffect(() => {
    if (!headerEditor || !token.authorization) return;
    const text = headerEditor.getValue();
    if (authorizationIn(text)) return;
    const filled = withAuthorization(text, token.authorization);
    if (filled !== text) headerEditor.setValue(filled);
  }, [activeTabIndex, headerEditor]);
  return null;
}

function SchemaNote({ state }: { state: SchemaState }) {
  const text = {
    waiting: "Paste a token after Bearer in Headers (below the editor), then press Run. Docs load with it.",
    loading: "Loading the schema…",
    loaded: "Schema loaded: Docs and autocompletion follow this token.",
    refused: `The schema was refused for this token (${state.kind === "refused" ? state.reason : ""}); queries still run.`,
  }[state.kind];
  return (
    <p className="orders-schema-note" data-state={state.kind}>
      {text}
    </p>
  );
}

function App() {
  const schema = useSchemaForToken();
  const onEditHeaders = useCallback((value: string) => token.offer(authorizationIn(value)), []);
  return (
    <GraphiQLProvider
      fetcher={fetcher}
      // null: no introspection by GraphiQL itself (it would run before there is a token).
      schema={schema.kind === "loaded" ? schema.schema : null}
      defaultTabs={EXAMPLE_TABS.map((tab) => ({ ...tab, headers: DEFAULT_HEADERS }))}
      defaultHeaders={DEFAULT_HEADERS}
      shouldPersistHeaders={false}
    >
      <ActiveTabInEditors />
      <TokenInEveryTab />
      <GraphiQLInterface
        defaultEditorToolsVisibility="headers"
        isHeadersEditorEnabled
        showPersistHeadersSettings={false}
        onEditHeaders={onEditHeaders}
      >
        <GraphiQL.Footer>
          <SchemaNote state={schema} />
        </GraphiQL.Footer>
      </GraphiQLInterface>
    </GraphiQLProvider>
  );
}

const root = document.getElementById("graphiql");
if (!root) throw new Error("the page has no #graphiql element");
createRoot(root).render(<App />);
