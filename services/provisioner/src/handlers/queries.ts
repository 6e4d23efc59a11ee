import { QueryFailed, type QueryServer, serveQuery } from "@mikrom/bus";
import { GetConsole, type Names, provisionerQuerySubject } from "@mikrom/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Agent } from "../agent/agent.ts";
import { DEFAULT_CONSOLE_BYTES } from "../drivers/driver.ts";

/**
 * `<ns>.qry.provisioner.<hostId>.console`: the tail of a VM's serial console. Only this host's
 * agent listens on its subject (queue group per host, should it ever run twice).
 */
export function serveConsole(nc: NatsConnection, agent: Agent, names: Names): QueryServer {
  return serveQuery(
    nc,
    {
      subject: provisionerQuerySubject(names, agent.hostId, GetConsole.type),
      request: GetConsole,
      response: GetConsole.response,
    },
    async (request) => {
      if (request.hostId !== agent.hostId)
        throw new QueryFailed("invalid", `this is host ${agent.hostId}, not ${request.hostId}`);
      const view = await agent.console(request.vmId, request.maxBytes ?? DEFAULT_CONSOLE_BYTES);
      if (!view) throw new QueryFailed("not_found", `VM ${request.vmId} is not on host ${agent.hostId}`);
      return { vmId: request.vmId, hostId: agent.hostId, status: view.status, output: view.output };
    },
    { queue: `provisioner-${agent.hostId}` },
  );
}
