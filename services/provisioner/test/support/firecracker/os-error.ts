import { getSystemErrorMessage } from "node:util";

/** glibc's strerror where libuv words it otherwise. */
const STRERROR: Record<string, string> = {
  EACCES: "Permission denied",
  EEXIST: "File exists",
};

/** A failed system call as Firecracker and its jailer (Rust's io::Error) print it: "No such file or directory (os error 2)". */
export function osErrorText(error: unknown): string {
  const { errno, code } = error as NodeJS.ErrnoException;
  if (errno === undefined) return (error as Error).message;
  const text = STRERROR[code ?? ""] ?? getSystemErrorMessage(errno);
  return `${text.charAt(0).toUpperCase()}${text.slice(1)} (os error ${-errno})`;
}
