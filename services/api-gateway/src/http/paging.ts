import { z } from "zod";

/** `page` and `page_size` (1-100, default 10), as the earlier API took them. */
export const PageQuery = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  page_size: z.coerce.number().int().min(1).max(100).default(10),
});

export type PageSchema<T extends z.ZodType> = z.ZodObject<{
  items: z.ZodArray<T>;
  total: z.ZodInt;
  page: z.ZodInt;
  page_size: z.ZodInt;
  total_pages: z.ZodInt;
}>;

/** The paged answer around `item`, for the OpenAPI document. */
export function pageOf<T extends z.ZodType>(item: T): PageSchema<T> {
  return z.object({
    items: z.array(item),
    total: z.int(),
    page: z.int(),
    page_size: z.int(),
    total_pages: z.int(),
  });
}

export interface Paged<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
  total_pages: number;
}

export function paged<T>(items: T[], total: number, page: number, pageSize: number): Paged<T> {
  return { items, total, page, page_size: pageSize, total_pages: Math.ceil(total / pageSize) };
}
