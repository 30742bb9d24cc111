"""The GraphQL API (schema and thin resolvers), the Starlette app, auth, the composition root and
the CLI."""
