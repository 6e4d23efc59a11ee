import { z } from "zod";

/** `srv-` and 8 hex digits, minted by the gateway. */
export const VmId = z.string().regex(/^srv-[0-9a-f]{8}$/, "must be srv- followed by 8 hex digits");
export type VmId = z.infer<typeof VmId>;

export const UserId = z.int().positive();
export type UserId = z.infer<typeof UserId>;

export const VmName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/, "letters, digits and inner hyphens only");

export const Ipv4 = z.ipv4();
