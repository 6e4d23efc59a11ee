/**
 * JSON schemas for the custom resources the manifests use, which kubernetes-models' core validators
 * do not know. Written from CloudNativePG's API reference (postgresql.cnpg.io/v1 Cluster,
 * https://cloudnative-pg.io/documentation/current/cloudnative-pg.v1/): the fields used here, their
 * types, and the required ones; unknown fields are refused so a typo does not pass silently.
 */
const quantity = { anyOf: [{ type: "string", pattern: "^[0-9.]+([KMGTPE]i?|m)?$" }, { type: "number" }] };
const resources = {
  type: "object",
  additionalProperties: false,
  properties: {
    requests: { type: "object", additionalProperties: quantity },
    limits: { type: "object", additionalProperties: quantity },
  },
};

export const cnpgCluster = {
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  properties: {
    apiVersion: { const: "postgresql.cnpg.io/v1" },
    kind: { const: "Cluster" },
    metadata: {
      type: "object",
      required: ["name"],
      properties: { name: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" } },
    },
    spec: {
      type: "object",
      additionalProperties: false,
      required: ["instances", "storage"],
      properties: {
        instances: { type: "integer", minimum: 1 },
        imageName: { type: "string", minLength: 1 },
        primaryUpdateStrategy: { enum: ["unsupervised", "supervised"] },
        minSyncReplicas: { type: "integer", minimum: 0 },
        maxSyncReplicas: { type: "integer", minimum: 0 },
        storage: {
          type: "object",
          additionalProperties: false,
          properties: { size: { type: "string" }, storageClass: { type: "string" } },
        },
        affinity: {
          type: "object",
          additionalProperties: false,
          properties: {
            enablePodAntiAffinity: { type: "boolean" },
            topologyKey: { type: "string" },
            podAntiAffinityType: { enum: ["preferred", "required"] },
            nodeSelector: { type: "object", additionalProperties: { type: "string" } },
          },
        },
        postgresql: {
          type: "object",
          properties: { parameters: { type: "object", additionalProperties: { type: "string" } } },
        },
        bootstrap: {
          type: "object",
          additionalProperties: false,
          properties: {
            initdb: {
              type: "object",
              additionalProperties: false,
              properties: {
                database: { type: "string" },
                owner: { type: "string" },
                secret: {
                  type: "object",
                  required: ["name"],
                  additionalProperties: false,
                  properties: { name: { type: "string" } },
                },
                postInitSQL: { type: "array", items: { type: "string" } },
                postInitApplicationSQL: { type: "array", items: { type: "string" } },
              },
            },
          },
        },
        resources,
      },
    },
  },
} as const;

/** `apiVersion/kind` → schema. */
export const CRD_SCHEMAS: Record<string, object> = { "postgresql.cnpg.io/v1/Cluster": cnpgCluster };
