import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  type Actor,
  Header,
  type HostView,
  names,
  type VmListKey,
  type VmStatus,
  type VmView,
} from "@mikrom/contracts";
import {
  AckPolicy,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import {
  type MsgHdrs,
  type NatsConnection,
  nanos,
  headers as natsHeaders,
  type Subscription,
} from "@nats-io/transport-node";

/** The command and event streams of a namespace, as the bus will declare them (work-queue commands, limits events). */
export async function ensureStreams(
  jsm: JetStreamManager,
  namespace: string,
  options: { duplicateWindowMs?: number } = {},
): Promise<void> {
  const n = names(namespace);
  await jsm.streams.add({
    name: n.streams.commands,
    subjects: [n.allCommands],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.Memory,
    ...(options.duplicateWindowMs !== undefined && { duplicate_window: nanos(options.duplicateWindowMs) }),
  });
  await jsm.streams.add({
    name: n.streams.events,
    subjects: [n.allEvents],
    retention: RetentionPolicy.Limits,
    storage: StorageType.Memory,
  });
}

interface Stored {
  eventId: string;
  type: string;
  data: Record<string, unknown>;
  recordedAt: string;
}

/**
 * Plays vm-service for the gateway's tests: consumes `<ns>.cmd.vm.>` from JetStream, decides with
 * a tiny transition table, publishes the outcome event with the command's id as causation id, and
 * answers the `<ns>.qry.vm.*` queries from memory.
 */
export class FakeVmService {
  readonly vms = new Map<string, VmView>();
  /** What the `hosts` query answers. */
  readonly hosts: HostView[] = [];
  readonly history = new Map<string, Stored[]>();
  readonly commandsSeen: string[] = [];
  /** The message id of every command received, in order. */
  readonly commandIds: string[] = [];
  /** When false, commands are consumed but never answered (the gateway's bound passes). */
  answering = true;
  /** When true, queries are answered "unavailable" (vm-service's read side away). */
  queriesAway = false;
  /** When set, creates are refused with this reason (a VM limit). */
  refuseCreates: string | undefined;
  readonly #js: JetStreamClient;
  readonly #ns: string;
  readonly #changes = new EventEmitter();
  /** Each VM's last event as sent, to send again. */
  readonly #sent = new Map<
    string,
    { id: string; subject: string; body: string; headers: MsgHdrs; resends: number }
  >();
  #messages: ConsumerMessages | undefined;
  #subs: Subscription[] = [];

  private constructor(js: JetStreamClient, ns: string) {
    this.#js = js;
    this.#ns = ns;
    this.#changes.setMaxListeners(1000);
  }

  static async start(
    nc: NatsConnection,
    namespace: string,
    options: { duplicateWindowMs?: number } = {},
  ): Promise<FakeVmService> {
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm, namespace, options);
    const n = names(namespace);
    await jsm.consumers.add(n.streams.commands, {
      durable_name: "vm-service",
      ack_policy: AckPolicy.Explicit,
      filter_subject: `${namespace}.cmd.vm.>`,
    });
    const service = new FakeVmService(jetstream(nc), namespace);
    const consumer = await service.#js.consumers.get(n.streams.commands, "vm-service");
    service.#messages = await consumer.consume({ max_messages: 128 });
    void (async () => {
      for await (const m of service.#messages!) {
        service.commandsSeen.push(m.headers?.get(Header.Type) ?? "");
        service.commandIds.push(m.headers?.get(Header.MessageId) ?? "");
        if (!service.answering) {
          m.ack();
          continue;
        }
        // Decided at once (state changes synchronously), answered without holding up the next
        // command: the real service works on many VMs at a time too.
        void service
          .#decide(m.headers?.get(Header.Type) ?? "", m.json(), m.headers?.get(Header.MessageId) ?? "")
          .finally(() => m.ack());
      }
    })();
    for (const name of ["get", "list", "history", "wait", "hosts"]) {
      const sub = nc.subscribe(n.query("vm", name));
      service.#subs.push(sub);
      void (async () => {
        for await (const m of sub) {
          // A wait may take seconds: answer each request on its own.
          void service.#query(name, m.json()).then((reply) => m.respond(JSON.stringify(reply)));
        }
      })();
    }
    await nc.flush();
    return service;
  }

  async stop(): Promise<void> {
    await this.#messages?.close();
    for (const sub of this.#subs) sub.unsubscribe();
  }

  /** Moves a VM as the lifecycle would (e.g. to `running`), publishing the event that says so. */
  async transition(
    vmId: string,
    type: string,
    status: VmStatus,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const vm = this.vms.get(vmId)!;
    this.vms.set(vmId, { ...vm, status, ...(extra as Partial<VmView>), updatedAt: new Date().toISOString() });
    await this.#publish(vmId, type, { vmId, ...extra }, randomUUID());
  }

  /**
   * Sends the VM's last event again as a service does after a fault: the same message id, a
   * JetStream id of its own, so the stream stores it twice.
   */
  async sendAgain(vmId: string): Promise<void> {
    const last = this.#sent.get(vmId)!;
    const h = natsHeaders();
    for (const [key, values] of last.headers) for (const v of values) h.append(key, v);
    const n = String(++last.resends);
    h.set(Header.Resend, n);
    await this.#js.publish(last.subject, last.body, { msgID: `${last.id}:resend:${n}`, headers: h });
  }

  async #publish(
    vmId: string,
    type: string,
    data: Record<string, unknown>,
    causationId: string,
  ): Promise<void> {
    const eventId = randomUUID();
    const h = natsHeaders();
    h.set(Header.MessageId, eventId);
    h.set(Header.Type, type);
    h.set(Header.CausationId, causationId);
    h.set(Header.ContentType, "application/json");
    // As the relay stamps it: the time the VM's record took the change.
    h.set(Header.RecordedAt, this.vms.get(vmId)?.updatedAt ?? new Date().toISOString());
    if (type !== "CommandRejected") {
      const list = this.history.get(vmId) ?? [];
      list.push({ eventId, type, data, recordedAt: new Date().toISOString() });
      this.history.set(vmId, list);
    }
    this.#changes.emit(vmId);
    const sent = {
      id: eventId,
      subject: `${this.#ns}.evt.vm.${vmId}.${type}`,
      body: JSON.stringify(data),
      headers: h,
      resends: 0,
    };
    this.#sent.set(vmId, sent);
    await this.#js.publish(sent.subject, sent.body, { msgID: eventId, headers: h });
  }

  #visible(vmId: string, actor: Actor): VmView | undefined {
    const vm = this.vms.get(vmId);
    return vm && (actor.superuser || vm.userId === actor.userId) ? vm : undefined;
  }

  async #decide(
    type: string,
    cmd: Record<string, unknown> & { vmId: string; actor: Actor },
    commandId: string,
  ): Promise<void> {
    const reject = (code: string, reason: string) =>
      this.#publish(
        cmd.vmId,
        "CommandRejected",
        { entityId: cmd.vmId, command: type, code, reason },
        commandId,
      );
    const now = new Date().toISOString();
    if (type === "CreateVm") {
      if (this.vms.has(cmd.vmId)) return reject("conflict", "VM already exists");
      if (this.refuseCreates) return reject("limit", this.refuseCreates);
      const vm: VmView = {
        vmId: cmd.vmId,
        name: cmd.name as string,
        description: (cmd.description as string | null) ?? null,
        vcpuCount: cmd.vcpuCount as number,
        memoryMb: cmd.memoryMb as number,
        ipAddress: null,
        status: "pending",
        errorMessage: null,
        host: null,
        userId: cmd.actor.userId,
        createdAt: now,
        updatedAt: now,
      };
      this.vms.set(vm.vmId, vm);
      const { actor: _actor, ...data } = cmd;
      return this.#publish(vm.vmId, "VmCreated", { ...data, userId: cmd.actor.userId }, commandId);
    }
    const vm = this.#visible(cmd.vmId, cmd.actor);
    if (!vm) return reject("not_found", "VM not found");
    const moves: Record<string, { from: VmStatus[]; to: VmStatus; event: string }> = {
      StartVm: { from: ["stopped"], to: "starting", event: "VmStartRequested" },
      StopVm: { from: ["running"], to: "stopping", event: "VmStopRequested" },
      RestartVm: { from: ["running"], to: "restarting", event: "VmRestartRequested" },
      DeleteVm: {
        from: ["pending", "running", "stopped", "error"],
        to: "deleting",
        event: "VmDeleteRequested",
      },
    };
    if (type === "UpdateVm") {
      const { vmId, actor: _actor, ...changes } = cmd;
      this.vms.set(vmId, { ...vm, ...(changes as Partial<VmView>), updatedAt: now });
      return this.#publish(vmId, "VmUpdated", { vmId, ...changes }, commandId);
    }
    const move = moves[type];
    if (!move) return reject("invalid", `unknown command ${type}`);
    if (!move.from.includes(vm.status))
      return reject("conflict", `VM cannot ${type.replace("Vm", "").toLowerCase()} from status ${vm.status}`);
    this.vms.set(vm.vmId, { ...vm, status: move.to, updatedAt: now });
    return this.#publish(vm.vmId, move.event, { vmId: vm.vmId }, commandId);
  }

  async #query(
    name: string,
    req: Record<string, unknown> & { actor: Actor; vmId: string },
  ): Promise<unknown> {
    if (this.queriesAway) return { ok: false, error: { code: "unavailable", message: "away" } };
    const notFound = { ok: false, error: { code: "not_found", message: "VM not found" } };
    if (name === "hosts")
      return req.actor.superuser
        ? { ok: true, data: { items: this.hosts } }
        : { ok: false, error: { code: "forbidden", message: "only a superuser may list hosts" } };
    if (name === "list") {
      const page = (req.page as number) ?? 1;
      const size = (req.pageSize as number) ?? 10;
      const after = req.after as VmListKey | undefined;
      // Newest first, as vm-service lists them; its times are to the millisecond, so they are exact.
      const order = (v: VmView | VmListKey): string => `${v.createdAt} ${v.vmId}`;
      const all = [...this.vms.values()]
        .filter((v) => req.actor.superuser || v.userId === req.actor.userId)
        .filter((v) => req.status === undefined || v.status === req.status)
        .sort((x, y) => (order(x) < order(y) ? 1 : -1));
      const from = after ? all.filter((v) => order(v) < order(after)) : all.slice((page - 1) * size);
      const items = from.slice(0, size);
      const keys = items.map((v) => ({ createdAt: v.createdAt, vmId: v.vmId }));
      return { ok: true, data: { items, total: all.length, keys, more: from.length > size } };
    }
    const vm = this.#visible(req.vmId, req.actor);
    if (!vm) return notFound;
    if (name === "get") return { ok: true, data: vm };
    if (name === "history") {
      const events = (this.history.get(vm.vmId) ?? []).map((e) => ({
        eventId: e.eventId,
        type: e.type,
        version: 1,
        data: e.data,
        recordedAt: e.recordedAt,
        actor: { userId: vm.userId },
        traceId: "0af7651916cd43dd8448eb211c80319c",
      }));
      return { ok: true, data: { events } };
    }
    // wait: now, or on the next change, or when the timeout passes.
    const target = req.status as VmStatus;
    const reached = await new Promise<boolean>((resolve) => {
      const check = () => this.vms.get(vm.vmId)?.status === target;
      if (check()) return resolve(true);
      const onChange = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.#changes.off(vm.vmId, onChange);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#changes.off(vm.vmId, onChange);
        resolve(false);
      }, req.timeoutMs as number);
      this.#changes.on(vm.vmId, onChange);
    });
    return { ok: true, data: { reached, vm: this.vms.get(vm.vmId)! } };
  }
}
