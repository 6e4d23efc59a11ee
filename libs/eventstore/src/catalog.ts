import { type MessageDef, type MessageOf, parse } from "@mikrom/contracts";
import type { DomainEvent } from "./decider.ts";
import { UnreadableEvent } from "./errors.ts";

export type EventDef = MessageDef<"event">;

/** The domain events a list of definitions describes: `{ type, data }` per definition. */
export type EventsOf<Defs extends readonly EventDef[]> = Defs[number] extends infer D
  ? D extends EventDef
    ? MessageOf<D>
    : never
  : never;

/**
 * Turns the data of `type` at schema version `fromVersion` into the data of version `fromVersion + 1`.
 * Never edit a published event type in place: add a version and an upcaster instead.
 */
export interface Upcaster {
  readonly type: string;
  readonly fromVersion: number;
  // biome-ignore lint/suspicious/noExplicitAny: old payloads have no schema left in the code; the result is validated
  readonly up: (data: any) => unknown;
}

export function upcaster<D extends EventDef>(
  def: D,
  fromVersion: number,
  // biome-ignore lint/suspicious/noExplicitAny: see Upcaster.up
  up: (data: any) => unknown,
): Upcaster {
  if (!Number.isInteger(fromVersion) || fromVersion < 1 || fromVersion >= def.version) {
    throw new Error(`an upcaster of ${def.type} must start below its current version ${def.version}`);
  }
  return Object.freeze({ type: def.type, fromVersion, up });
}

/** What a new event is stored as. */
export interface EncodedEvent {
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: unknown;
}

/** The event types of one store: validates what is appended, upcasts what is read. */
export class EventCatalog<E extends DomainEvent> {
  readonly #defs = new Map<string, EventDef>();
  readonly #upcasters = new Map<string, Upcaster>();

  constructor(defs: readonly EventDef[], upcasters: readonly Upcaster[] = []) {
    for (const def of defs) {
      if (this.#defs.has(def.type)) throw new Error(`duplicate event type ${def.type}`);
      this.#defs.set(def.type, def);
    }
    for (const u of upcasters) {
      const def = this.#defs.get(u.type);
      if (!def) throw new Error(`upcaster for ${u.type}, which is not one of this store's events`);
      const key = `${u.type}@${u.fromVersion}`;
      if (this.#upcasters.has(key)) throw new Error(`two upcasters of ${u.type} from v${u.fromVersion}`);
      this.#upcasters.set(key, u);
    }
  }

  types(): string[] {
    return [...this.#defs.keys()];
  }

  /** Validates a new event against its definition (throws ValidationFailed) and stamps its schema version. */
  encode(event: DomainEvent): EncodedEvent {
    const def = this.#defs.get(event.type);
    if (!def) throw new UnreadableEvent(event.type, 0, "not one of this store's event types");
    return { type: def.type, schemaVersion: def.version, data: parse(def, event.data) };
  }

  /** A stored event as the current domain event: upcast step by step, then validated when it changed. */
  decode(type: string, schemaVersion: number, data: unknown): E {
    const def = this.#defs.get(type);
    if (!def) throw new UnreadableEvent(type, schemaVersion, "not one of this store's event types");
    if (schemaVersion > def.version) {
      throw new UnreadableEvent(type, schemaVersion, `this code knows versions up to ${def.version}`);
    }
    if (schemaVersion === def.version) return { type, data } as unknown as E;
    let current = data;
    for (let version = schemaVersion; version < def.version; version++) {
      const step = this.#upcasters.get(`${type}@${version}`);
      if (!step) throw new UnreadableEvent(type, schemaVersion, `no upcaster from v${version}`);
      current = step.up(current);
    }
    return { type, data: parse(def, current) } as unknown as E;
  }
}
