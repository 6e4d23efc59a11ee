/** Infrastructure a test needs is not there; the message says what to start and how, without a stack. */
export class InfrastructureMissing extends Error {
  override readonly name = "InfrastructureMissing";
  constructor(message: string) {
    super(message);
    this.stack = `${this.name}: ${message}`;
  }
}

export function reason(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reason(error.errors[0]);
  if (error instanceof Error) return (error as { code?: string }).code ?? error.message;
  return String(error);
}
