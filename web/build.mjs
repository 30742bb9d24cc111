// Bundles the pages into api/static (inside the Python package, so the wheel ships them).
// `node build.mjs` once; the Python side serves whatever this wrote.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const outdir = fileURLToPath(new URL("../api/static/", import.meta.url));
mkdirSync(outdir, { recursive: true });
// Fonts and images are files of their own (not data: URLs) so a strict Content-Security-Policy
// (default-src 'self') lets the pages load them; the previous build's are removed first.
for (const name of readdirSync(outdir)) {
  if (name.startsWith("asset-")) rmSync(join(outdir, name));
}

await build({
  entryPoints: { graphiql: "src/graphiql.tsx", dashboard: "src/dashboard.ts" },
  outdir,
  bundle: true,
  minify: true,
  // GraphiQL titles its icons from their components' names ("close icon"): minified names would
  // make them read "sce icon", for screen readers and for anyone finding a tab by its text.
  keepNames: true,
  sourcemap: false,
  format: "esm",
  target: ["es2020"],
  jsx: "automatic",
  legalComments: "linked",
  assetNames: "asset-[name]-[hash]",
  define: { "process.env.NODE_ENV": '"production"' },
  loader: { ".graphql": "text", ".woff2": "file", ".woff": "file", ".ttf": "file", ".svg": "file" },
  logLevel: process.argv.includes("--log-level=warning") ? "warning" : "info",
});

// GraphiQL's stylesheet carries its fonts and icons as data: URLs, which a strict
// Content-Security-Policy refuses: each becomes a file beside the bundles, named by its hash.
const EXTENSIONS = { "font/woff2": "woff2", "font/woff": "woff", "image/png": "png", "image/svg+xml": "svg" };
for (const name of ["graphiql.css", "dashboard.css"]) {
  const path = join(outdir, name);
  const css = readFileSync(path, "utf8").replace(
    /url\(\s*["']?data:([a-z0-9+./-]+);base64,([A-Za-z0-9+/=]+)["']?\s*\)/g,
    (whole, type, data) => {
      const extension = EXTENSIONS[type];
      if (!extension) throw new Error(`${name}: a data: URL of type ${type} has no file extension here`);
      const bytes = Buffer.from(data, "base64");
      const file = `asset-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}.${extension}`;
      writeFileSync(join(outdir, file), bytes);
      return `url(${file})`;
    },
  );
  writeFileSync(path, css);
}

// The Python side checks for this file to know the assets are complete.
writeFileSync(new URL("../api/static/manifest.json", import.meta.url), JSON.stringify({
  pages: ["graphiql", "dashboard"],
  built: new Date().toISOString(),
}, null, 2) + "\n");
