/**
 * Thrown by a handler for a message that can never succeed (it refers to something that will not
 * exist, say): the message goes to the dead-letter stream at once instead of being retried.
 */
export class PermanentFailure extends Error {
  override readonly name = "PermanentFailure";
}

/** The text a dead letter carries as its reason. */
export function describeError(error: unknown): string {
  if (error instanceof Error)
    return error.name === "Error" ? error.message : `${error.name}: ${error.message}`;
  return String(error);
}
