import { readFile } from "node:fs/promises";

/** A journal of JSON lines (the fakes'), parsed; none when the file is not there yet. */
export async function readJsonLines<T>(file: string): Promise<T[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}
