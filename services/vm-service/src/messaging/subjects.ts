import {
  AllocateIp,
  BootVm,
  CommandRejected,
  DestroyVm,
  IPPOOL_SERVICE,
  IppoolVerb,
  type MessageDef,
  type Names,
  PROVISIONER_SERVICE,
  ProvisionerVerb,
  RebootVm,
  ReleaseIp,
  ResumeVm,
  ShutDownVm,
  VM_SERVICE,
  vmEvents,
} from "@mikrom/contracts";
import type { Outgoing } from "../domain/outgoing.ts";

const OUTGOING: readonly MessageDef[] = [
  AllocateIp,
  ReleaseIp,
  BootVm,
  ShutDownVm,
  ResumeVm,
  RebootVm,
  DestroyVm,
];
const DEFS = new Map<string, MessageDef>([...vmEvents, ...OUTGOING, CommandRejected].map((d) => [d.type, d]));

/** The contract definition of a message this service emits (schema and version). */
export function definitionOf(type: string): MessageDef {
  const def = DEFS.get(type);
  if (!def) throw new Error(`no contract for outgoing message ${type}`);
  return def;
}

export function subjectOf(names: Names, out: Outgoing): string {
  return out.service === "ippool"
    ? names.command(IPPOOL_SERVICE, IppoolVerb[out.command.type])
    : names.command(PROVISIONER_SERVICE, out.hostId, ProvisionerVerb[out.command.type]);
}

export function vmEventSubject(names: Names, vmId: string, type: string): string {
  return names.event(VM_SERVICE, vmId, type);
}
