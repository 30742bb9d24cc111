declare module "*.css";

/** A GraphQL document, bundled as text (esbuild's text loader). */
declare module "*.graphql" {
  const document: string;
  export default document;
}
