import { z } from "zod";

/**
 * Free text that may reach PostgreSQL: any string PostgreSQL can store. `text` and `jsonb` refuse
 * U+0000, and `jsonb` refuses a lone UTF-16 surrogate (JSON.stringify writes it as `\ud800`), so a
 * string with either would pass validation and then fail deep inside a service: a 500, or a command
 * answered 202 that ends as a dead letter. Every string field of a request or a message that is
 * stored is built on this one schema (`Text.max(500)`, `Text.regex(...)`), so the gateway and the
 * services refuse the same input with the same words.
 */
export const Text = z.string().superRefine((value, ctx) => {
  if (value.includes("\u0000")) {
    ctx.addIssue({ code: "custom", message: "must not contain NUL characters (U+0000)" });
  }
  if (!value.isWellFormed()) {
    ctx.addIssue({
      code: "custom",
      message: "must be well-formed Unicode (it holds a lone UTF-16 surrogate)",
    });
  }
});
