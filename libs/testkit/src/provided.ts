/** What the global setup hands every test file (read with vitest's `inject`). */
declare module "vitest" {
  export interface ProvidedContext {
    natsUrl: string;
    databaseUrl: string;
  }
}

export {};
