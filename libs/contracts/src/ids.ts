import { z } from "zod";
import { Text } from "./text.ts";

/** `srv-` and 8 hex digits, minted by the gateway. */
export const VmId = z.string().regex(/^srv-[0-9a-f]{8}$/, "must be srv- followed by 8 hex digits");
export type VmId = z.infer<typeof VmId>;

export const UserId = z.int().positive();
export type UserId = z.infer<typeof UserId>;

/** A provisioner host: `MIKROM_HOST_ID` or the hostname, usable as a subject token. */
export const HostId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, '-' and '_' only");
export type HostId = z.infer<typeof HostId>;

export const VmName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/, "letters, digits and inner hyphens only");

export const Ipv4 = z.ipv4();

/** Who asked: carried in every command so the owning service can check ownership and record the actor. */
export const Actor = z.object({
  userId: UserId,
  userName: Text.min(1),
  superuser: z.boolean().default(false),
});
export type Actor = z.infer<typeof Actor>;

export const Timestamp = z.iso.datetime({ offset: true });
