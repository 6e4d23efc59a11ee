import type { TestNats } from "@mikrom/testkit";
import type { GatewayDeps } from "../../src/app.ts";
import { NatsBackend } from "../../src/nats-backend.ts";
import { type RunningGateway, type Session, startGateway } from "./gateway.ts";
import { FakeIppoolService } from "./ippool-service.ts";
import { FakeVmService } from "./vm-service.ts";

export interface World {
  gw: RunningGateway;
  vmService: FakeVmService;
  ippoolService: FakeIppoolService;
  a: Session;
  b: Session;
  root: Session;
  close(): Promise<void>;
}

/** The gateway over real NATS and PostgreSQL, vm-service played by the test, users A, B and a superuser. */
export async function world(
  dbUrl: string,
  nats: TestNats,
  config: Partial<GatewayDeps["config"]> = {},
): Promise<World> {
  const vmService = await FakeVmService.start(nats.nc, nats.namespace);
  const ippoolService = await FakeIppoolService.start(nats.nc, nats.namespace);
  const backend = await NatsBackend.create(nats.nc, nats.namespace);
  const gw = await startGateway(dbUrl, { backend, config });
  const [a, b, root] = await Promise.all([gw.user("a"), gw.user("b"), gw.user("root", { superuser: true })]);
  return {
    gw,
    vmService,
    ippoolService,
    a,
    b,
    root,
    async close() {
      await gw.close();
      await vmService.stop();
      await ippoolService.stop();
    },
  };
}
