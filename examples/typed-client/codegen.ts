// GraphQL Code Generator's client preset: types for every operation in src/, from the served schema
// (schema.graphql at the repository root, exported from the code). `npm run codegen` writes
// src/gql/; `npm run typecheck` then checks the client against them.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.ts", "!src/gql/**/*"],
  ignoreNoDocuments: false,
  emitLegacyCommonJSImports: false, // `.js` in the generated imports, as Node's ESM wants
  generates: {
    "src/gql/": {
      preset: "client",
      config: {
        // The custom scalars travel as JSON strings (Decimal: exact money, never a float).
        scalars: { DateTime: "string", Decimal: "string", JSON: "unknown" },
        enumsAsTypes: true,
        useTypeImports: true,
      },
    },
  },
};

export default config;
