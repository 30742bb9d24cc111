# Sourced by scripts/_venv.sh: builds web/'s pages (GraphiQL, the dashboard) into api/static when
# npm is here and the build is missing or older than web/'s sources, like .venv for pyproject.toml.
# Without npm the service still runs: GraphiQL loads from a CDN and /dashboard says how to build.
web="$root/web"
web_stamp="$root/api/static/.built-from"
web_want="$(cd "$web" && find package-lock.json build.mjs tsconfig.json src -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$web_stamp" 2>/dev/null || true)" != "$web_want" ]; then
    if command -v npm >/dev/null 2>&1; then
        modules_stamp="$web/node_modules/.installed-from"
        modules_want="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
        if [ "$(cat "$modules_stamp" 2>/dev/null || true)" != "$modules_want" ]; then
            echo "installing web/'s npm packages from its lockfile (once)" >&2
            (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >&2)
            echo "$modules_want" > "$modules_stamp"
        fi
        echo "building the web pages into api/static (once)" >&2
        (cd "$web" && node build.mjs --log-level=warning >/dev/null)
        echo "$web_want" > "$web_stamp"
    else
        echo "npm not found: the web pages are not built (GraphiQL falls back to a CDN)" >&2
    fi
fi
