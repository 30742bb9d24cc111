// Bundles the pages into api/static (inside the Python package, so the wheel ships them).
// `node build.mjs` once; the Python side serves whatever this wrote.
import { build } from "esbuild";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const outdir = fileURLToPath(new URL("../api/static/", import.meta.url));
mkdirSync(outdir, { recursive: true });

await build({
  entryPoints: { graphiql: "src/graphiql.tsx", dashboard: "src/dashboard.ts" },
  outdir,
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: ["es2020"],
  jsx: "automatic",
  legalComments: "linked",
  define: { "process.env.NODE_ENV": '"production"' },
  loader: { ".woff2": "dataurl", ".woff": "dataurl", ".ttf": "dataurl", ".svg": "dataurl" },
  logLevel: process.argv.includes("--log-level=warning") ? "warning" : "info",
});

// The Python side checks for this file to know the assets are complete.
writeFileSync(new URL("../api/static/manifest.json", import.meta.url), JSON.stringify({
  pages: ["graphiql", "dashboard"],
  built: new Date().toISOString(),
}, null, 2) + "\n");
