# Sourced by scripts/_venv.sh: installs the npm packages of the client tests (tests/clients/js:
# Apollo Client, urql), of the OIDC tests' provider (tests/support/oidc_provider: oidc-provider) and of
# the typed client example (examples/typed-client: GraphQL Code Generator, TypeScript) from their
# lockfiles with `npm ci`, when npm is here and a lockfile changed since the last install, as
# scripts/_web.sh does for web/. Without npm the client tests fail and
# say how to install them.
for npm_dir in "$root/tests/clients/js" "$root/tests/support/oidc_provider" "$root/examples/typed-client"; do
    npm_stamp="$npm_dir/node_modules/.installed-from"
    npm_want="$(sha256sum "$npm_dir/package-lock.json" | cut -d' ' -f1)"
    if [ "$(cat "$npm_stamp" 2>/dev/null || true)" != "$npm_want" ] && command -v npm >/dev/null 2>&1; then
        echo "installing ${npm_dir#"$root"/}'s npm packages from its lockfile (once)" >&2
        (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        echo "$npm_want" > "$npm_stamp"
    fi
done
