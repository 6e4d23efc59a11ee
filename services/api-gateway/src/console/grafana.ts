/**
 * A trace in Grafana's Explore, on the Tempo datasource as deploy/grafana provisions it (uid
 * `tempo`). Undefined without a Grafana address: the console then shows the bare trace id.
 */
export function traceUrl(grafanaUrl: string | undefined, traceId: string | null): string | undefined {
  if (!grafanaUrl || !traceId || !/^[0-9a-f]{32}$/.test(traceId)) return undefined;
  const panes = {
    trace: {
      datasource: "tempo",
      queries: [
        { refId: "A", datasource: { type: "tempo", uid: "tempo" }, queryType: "traceql", query: traceId },
      ],
      range: { from: "now-7d", to: "now" },
    },
  };
  return `${grafanaUrl}/explore?schemaVersion=1&orgId=1&panes=${encodeURIComponent(JSON.stringify(panes))}`;
}
