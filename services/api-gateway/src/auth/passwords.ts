import { hash, verify } from "@node-rs/argon2";

// Argon2id (value 2 of the library's const enum, which type stripping cannot inline) with the
// OWASP-recommended floor: 19 MiB, 2 passes, 1 lane.
const OPTIONS = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS);
}

// Verifying against this when the user does not exist keeps "no such user" and "wrong password"
// equally slow, so login timing does not reveal which emails have accounts.
let decoy: Promise<string> | undefined;

export async function verifyPassword(hashed: string | undefined, password: string): Promise<boolean> {
  if (hashed === undefined) {
    decoy ??= hashPassword("decoy password that matches nothing");
    await verify(await decoy, password).catch(() => false);
    return false;
  }
  return verify(hashed, password).catch(() => false);
}
