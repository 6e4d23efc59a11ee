export * from "./audit.ts";
export { Header, type HeaderName } from "./headers.ts";
export * from "./hosts.ts";
export { Actor, HostId, Ipv4, Timestamp, UserId, VmId, VmName } from "./ids.ts";
export * from "./ippool.ts";
export {
  command,
  type DataOf,
  event,
  issuesOf,
  type MessageDef,
  type MessageKind,
  type MessageOf,
  parse,
  type QueryDef,
  QueryErrorCode,
  type QueryReply,
  query,
  Registry,
  type RequestOf,
  type ResponseOf,
  ValidationFailed,
} from "./message.ts";
export * from "./provisioner.ts";
export { type EventParts, type Names, names } from "./subjects.ts";
export { Text } from "./text.ts";
export * from "./vm.ts";
