/**
 * The Grafana dashboard, written as code so its queries are checked against the metric names the
 * services emit today (libs/telemetry, libs/bus, libs/eventstore), then rendered to
 * deploy/grafana/dashboards/mikrom.json by generate.ts. Prometheus names are the OTLP names as
 * Prometheus 3 translates them: dots to underscores, unit `s` as `_seconds`.
 */

/** The metrics the dashboard queries, as the code names them, and their Prometheus names. */
export const METRICS = {
  "http.server.request.duration": "http_server_request_duration_seconds",
  "messaging.process.duration": "messaging_process_duration_seconds",
  "mikrom.consumer.pending": "mikrom_consumer_pending",
  "mikrom.consumer.ack_pending": "mikrom_consumer_ack_pending",
  "mikrom.consumer.redelivered": "mikrom_consumer_redelivered",
  "mikrom.outbox.backlog": "mikrom_outbox_backlog",
  "mikrom.vm.operation.duration": "mikrom_vm_operation_duration_seconds",
  "mikrom.vms": "mikrom_vms",
  "mikrom.provisioner.boot.duration": "mikrom_provisioner_boot_duration_seconds",
  "mikrom.ippool.free_addresses": "mikrom_ippool_free_addresses",
} as const;

/** Where each metric's instrument is created (the grafana test checks the name is there). */
export const METRIC_SOURCES = [
  "libs/telemetry/src/metrics.ts",
  "libs/bus/src/metrics.ts",
  "libs/eventstore/src/metrics.ts",
  "services/vm-service/src/metrics.ts",
  "services/provisioner/src/agent/metrics.ts",
  "services/ippool-service/src/metrics.ts",
];

/** The provisioner's commands: handling one is the hypervisor work of a lifecycle step. */
const LIFECYCLE = "BootVm|ResumeVm|RebootVm|ShutDownVm|DestroyVm";

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource: { type: string; uid: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  description: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource: { type: string; uid: string };
  targets: Target[];
  fieldConfig: { defaults: { unit?: string }; overrides: [] };
  options?: Record<string, unknown>;
}

const prometheus = { type: "prometheus", uid: "prometheus" };
const loki = { type: "loki", uid: "loki" };

function panel(
  id: number,
  title: string,
  description: string,
  at: [number, number, number, number],
  unit: string,
  exprs: Array<[string, string]>,
  source = prometheus,
  type = "timeseries",
): Panel {
  const [x, y, w, h] = at;
  return {
    id,
    type,
    title,
    description,
    gridPos: { x, y, w, h },
    datasource: source,
    targets: exprs.map(([expr, legendFormat], i) => ({
      refId: String.fromCharCode(65 + i),
      expr,
      legendFormat,
      datasource: source,
    })),
    fieldConfig: { defaults: unit ? { unit } : {}, overrides: [] },
  };
}

const m = METRICS;
const rate = "[$__rate_interval]";

export function dashboard(): Record<string, unknown> {
  const panels: Panel[] = [
    panel(
      1,
      "Requests by route and status",
      "HTTP requests per second at the gateway, by route template and status code.",
      [0, 0, 12, 8],
      "reqps",
      [
        [
          `sum by (http_route, http_response_status_code) (rate(${m["http.server.request.duration"]}_count${rate}))`,
          "{{http_route}} {{http_response_status_code}}",
        ],
      ],
    ),
    panel(
      2,
      "Request duration p95 by route",
      "95th percentile of the gateway's request duration.",
      [12, 0, 12, 8],
      "s",
      [
        [
          `histogram_quantile(0.95, sum by (le, http_route) (rate(${m["http.server.request.duration"]}_bucket${rate})))`,
          "{{http_route}}",
        ],
      ],
    ),
    panel(
      3,
      "VM lifecycle durations (p50, p95)",
      "From the request to the outcome, per operation (create->running, start, stop, restart, delete), as vm-service records them; and the provisioner's boot alone.",
      [0, 8, 12, 8],
      "s",
      [
        [
          `histogram_quantile(0.5, sum by (le, mikrom_vm_operation) (rate(${m["mikrom.vm.operation.duration"]}_bucket{mikrom_outcome="success"}${rate})))`,
          "p50 {{mikrom_vm_operation}}",
        ],
        [
          `histogram_quantile(0.95, sum by (le, mikrom_vm_operation) (rate(${m["mikrom.vm.operation.duration"]}_bucket{mikrom_outcome="success"}${rate})))`,
          "p95 {{mikrom_vm_operation}}",
        ],
        [
          `histogram_quantile(0.95, sum by (le, mikrom_provisioner_driver) (rate(${m["mikrom.provisioner.boot.duration"]}_bucket${rate})))`,
          "p95 boot ({{mikrom_provisioner_driver}})",
        ],
        [
          `histogram_quantile(0.95, sum by (le, messaging_message_type) (rate(${m["messaging.process.duration"]}_bucket{messaging_message_type=~"${LIFECYCLE}"}${rate})))`,
          "p95 handling {{messaging_message_type}}",
        ],
      ],
    ),
    panel(
      4,
      "Failures",
      "Deliveries that were retried or dead-lettered, by consumer; and the gateway's 5xx answers.",
      [12, 8, 12, 8],
      "ops",
      [
        [
          `sum by (messaging_consumer_group_name, mikrom_outcome) (rate(${m["messaging.process.duration"]}_count{mikrom_outcome!="ack"}${rate}))`,
          "{{messaging_consumer_group_name}} {{mikrom_outcome}}",
        ],
        [
          `sum(rate(${m["http.server.request.duration"]}_count{http_response_status_code=~"5.."}${rate}))`,
          "HTTP 5xx",
        ],
        [
          `sum by (mikrom_vm_operation) (rate(${m["mikrom.vm.operation.duration"]}_count{mikrom_outcome!="success"}${rate}))`,
          "failed {{mikrom_vm_operation}}",
        ],
      ],
    ),
    panel(
      5,
      "Message backlog per consumer",
      "Messages not yet delivered and delivered-but-unacked per durable consumer (max over replicas: they all see the same consumer).",
      [0, 16, 12, 8],
      "short",
      [
        [
          `max by (messaging_consumer_group_name) (${m["mikrom.consumer.pending"]})`,
          "pending {{messaging_consumer_group_name}}",
        ],
        [
          `max by (messaging_consumer_group_name) (${m["mikrom.consumer.ack_pending"]})`,
          "ack pending {{messaging_consumer_group_name}}",
        ],
        [
          `max by (messaging_consumer_group_name) (${m["mikrom.consumer.redelivered"]})`,
          "redelivered {{messaging_consumer_group_name}}",
        ],
      ],
    ),
    panel(
      6,
      "Outbox backlog per database",
      "Events committed in PostgreSQL and not yet acknowledged by JetStream; growing means the relay does not keep up.",
      [12, 16, 12, 8],
      "short",
      [[`max by (db_namespace) (${m["mikrom.outbox.backlog"]})`, "{{db_namespace}}"]],
    ),
    panel(
      8,
      "VMs by status",
      "VMs in each status (deleted ones excluded), as vm-service counts them.",
      [0, 24, 12, 8],
      "short",
      [[`max by (mikrom_vm_status) (${m["mikrom.vms"]})`, "{{mikrom_vm_status}}"]],
    ),
    panel(
      9,
      "Free addresses per pool",
      "Addresses left to hand out in each IP pool.",
      [12, 24, 12, 8],
      "short",
      [[`max by (mikrom_ippool_pool) (${m["mikrom.ippool.free_addresses"]})`, "{{mikrom_ippool_pool}}"]],
    ),
    panel(
      7,
      "Errors in the logs",
      "ERROR and FATAL log lines per service (Loki); each line links to its trace.",
      [0, 32, 24, 8],
      "",
      [['{service_namespace="mikrom"} | severity_text=~"ERROR|FATAL"', ""]],
      loki,
      "logs",
    ),
  ];
  return {
    uid: "mikrom-overview",
    title: "Mikrom overview",
    tags: ["mikrom"],
    timezone: "utc",
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: "30s",
    time: { from: "now-1h", to: "now" },
    templating: { list: [] },
    annotations: { list: [] },
    panels,
  };
}
