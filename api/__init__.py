"""The GraphQL API, the Starlette app, auth, the command handler and the composition root."""
