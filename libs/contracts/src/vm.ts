import { z } from "zod";
import { UserId, VmId, VmName } from "./ids.ts";
import { event } from "./message.ts";

export const VmCreated = event(
  "VmCreated",
  1,
  z.object({
    vmId: VmId,
    userId: UserId,
    name: VmName,
    description: z.string().max(500).nullable(),
    vcpuCount: z.int().min(1).max(32),
    memoryMb: z.int().min(128).max(32768),
  }),
);
