export { Header, type HeaderName } from "./headers.ts";
export { Ipv4, UserId, VmId, VmName } from "./ids.ts";
export {
  command,
  type DataOf,
  event,
  issuesOf,
  type MessageDef,
  type MessageKind,
  type MessageOf,
  parse,
  query,
  Registry,
  ValidationFailed,
} from "./message.ts";
export { type Names, names } from "./subjects.ts";
export { VmCreated } from "./vm.ts";
