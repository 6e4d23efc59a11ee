import { Timestamp, VmId, type VmListKey, type VmView } from "@mikrom/contracts";
import { z } from "zod";
import { fieldErrors, Problem } from "../../http/problem.ts";

/**
 * A `page_token` is base64url JSON of the last VM a page showed (`created_at` to the microsecond, as
 * vm-service keeps it, and `vm_id`) and the number of the page it leads to. Opaque to clients but
 * neither secret nor signed: a well-formed token someone altered is only another place in a list the
 * caller reads anyway.
 */
const TokenBody = z.strictObject({
  created_at: Timestamp,
  vm_id: VmId,
  page: z.int().min(2).max(1_000_000),
});

const TokenQuery = z.object({
  page_token: z
    .string()
    .max(256)
    .regex(/^[A-Za-z0-9_-]+$/, "must be base64url")
    .transform((token, ctx): unknown => {
      try {
        return JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
      } catch {
        ctx.addIssue({ code: "custom", message: "must be a next_page_token as a page answered it" });
        return z.NEVER;
      }
    })
    .pipe(TokenBody),
});

/** Where a page of VMs starts: a page number (OFFSET paging), or the VM it follows. */
export interface PageStart {
  page: number;
  after?: VmListKey;
}

/**
 * The start the query asks for; an empty token is none (a client's walk may start with one, as
 * Google's APIs allow). A token the gateway did not write (malformed, altered), or one given
 * with `page` > 1, is a 400: the client sent something no page gave it, so its walk cannot go on.
 */
export function pageStart(q: { page: number; page_token?: string | undefined }): PageStart {
  if (!q.page_token) return { page: q.page };
  const parsed = TokenQuery.safeParse({ page_token: q.page_token });
  if (!parsed.success) {
    const errors = fieldErrors("query", parsed.error);
    throw new Problem(400, `Malformed page_token: ${errors.map((e) => e.message).join("; ")}`, { errors });
  }
  if (q.page !== 1)
    throw new Problem(400, "page and page_token both say where the page starts: give one of them", {
      errors: [
        { field: "query.page", message: "not with page_token", loc: ["query", "page"], type: "conflict" },
      ],
    });
  const t = parsed.data.page_token;
  return { page: t.page, after: { createdAt: t.created_at, vmId: t.vm_id } };
}

/**
 * The token of the page after `shown`, whose first `acknowledged` VMs are the gateway's own and the
 * rest `listed`'s first, in `listed.keys`' order; null on the last page, or from a vm-service that
 * sent no keys. After an acknowledged VM (a page of nothing else) the next page starts at the time
 * the gateway acknowledged it, to the millisecond.
 */
export function nextPageToken(
  shown: readonly VmView[],
  acknowledged: number,
  listed: { items: readonly VmView[]; keys?: readonly VmListKey[] | undefined; more?: boolean | undefined },
  page: number,
): string | null {
  const last = shown.at(-1);
  const fromList = Math.max(0, shown.length - acknowledged);
  if (!last || !listed.keys || !(listed.more || fromList < listed.items.length)) return null;
  const after = listed.keys[fromList - 1] ?? { createdAt: last.createdAt, vmId: last.vmId };
  const body: z.input<typeof TokenBody> = { created_at: after.createdAt, vm_id: after.vmId, page: page + 1 };
  return Buffer.from(JSON.stringify(body)).toString("base64url");
}
