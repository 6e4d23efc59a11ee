import { provisionerCommands, Registry } from "@mikrom/contracts";

export const commandRegistry = new Registry(provisionerCommands);

/** The durable consumer of one host's commands, `<ns>.cmd.provisioner.<hostId>.*`. */
export function commandsDurable(hostId: string): string {
  return `provisioner-${hostId}`;
}
