/**
 * What a secret must not be: a placeholder from an example, a default someone else also has, too
 * short, or too regular to be random. Services check their secrets with it at start and refuse to
 * run with one that fails (the gateway in production; credentials in URLs everywhere), with a
 * message that says what to set and how to make a good value.
 */

/** How good a secret of one kind must be, and the command that makes one. */
export interface SecretPolicy {
  readonly minLength: number;
  /** Least estimated entropy in bits: the length times the Shannon entropy of its characters. */
  readonly minBits: number;
  /** Shown in the error, e.g. `openssl rand -base64 48`. */
  readonly generate: string;
}

/** A key that signs tokens (HS256 wants at least 256 random bits; 128 estimated is the floor). */
export const SIGNING_KEY: SecretPolicy = { minLength: 32, minBits: 128, generate: "openssl rand -base64 48" };

/** A password a person may type: a passphrase will do, a default or a short word will not. */
export const PASSWORD: SecretPolicy = { minLength: 12, minBits: 40, generate: "openssl rand -base64 18" };

/** A password inside a URL: hex, since base64's `+`, `/` and `=` would need escaping there. */
export const URL_PASSWORD_COMMAND = "openssl rand -hex 32 | tr 0-9 g-p";

/** Words that give a value away as an example or a placeholder, wherever they appear in it. */
const PLACEHOLDER =
  /change[-_ .]?(me|it|this)|placeholder|example|replace[-_ .]?(me|this|with)|your[-_ .]?(own[-_ .]?)?(secret|password|key)|insecure|not[-_ .]?a?[-_ .]?secret|dummy|<[^>]*>|x{6,}/i;

/** Values made only of these words (digits and punctuation aside) are guessed first. */
const WEAK_WORDS =
  /^(password|passwd|admin|administrator|mikrom|secret|letmein|qwerty|welcome|changeme|default|root|test|dev|development)+$/;

/** Why `value` is not a usable secret, or undefined when it is. Never includes the value. */
function weakness(value: string, policy: SecretPolicy): string | undefined {
  const placeholder = PLACEHOLDER.exec(value);
  if (placeholder) return `is a placeholder (it contains "${fragment(placeholder[0])}")`;
  const letters = value.toLowerCase().replace(/[^a-z]/g, "");
  if (letters.length > 0 && WEAK_WORDS.test(letters)) return "is a default or a common word";
  if (value.length < policy.minLength)
    return `is too short (${value.length} characters, at least ${policy.minLength})`;
  if (patterned(value)) return "is a pattern (runs or repeats of characters), not random";
  const bits = Math.floor(estimatedBits(value));
  if (bits < policy.minBits) return `is not random enough (about ${bits} bits, at least ${policy.minBits})`;
  return undefined;
}

/**
 * `NAME: why: set NAME to …, e.g. \`command\`` when `value` is not a usable secret of this kind;
 * undefined when it is.
 */
export function secretProblem(name: string, value: string, policy: SecretPolicy): string | undefined {
  const why = weakness(value, policy);
  if (!why) return undefined;
  return `${name}: ${why}: set ${name} to a random value of ${policy.minLength} characters or more, e.g. \`${policy.generate}\``;
}

/** What is wrong with the passwords inside a URL or a comma-separated list of URLs (NATS servers). */
export function urlCredentialProblem(urls: string): string | undefined {
  for (const one of urls.split(",")) {
    let password: string;
    try {
      password = decodeURIComponent(new URL(one.trim()).password);
    } catch {
      continue; // Not a URL with credentials: the variable's own schema says what is wrong with it.
    }
    const placeholder = password && PLACEHOLDER.exec(password);
    if (placeholder) {
      return `its password is a placeholder (it contains "${fragment(placeholder[0])}"): set a random one, e.g. \`${URL_PASSWORD_COMMAND}\`, in the server and in this URL`;
    }
  }
  return undefined;
}

/** A matched placeholder as quoted in an error: short, so a long value is never repeated whole. */
const fragment = (match: string): string => (match.length > 12 ? `${match.slice(0, 10)}…` : match);

/** Length × the Shannon entropy of the value's own character frequencies: an estimate, low for short values. */
function estimatedBits(value: string): number {
  const counts = new Map<string, number>();
  const chars = [...value];
  for (const c of chars) counts.set(c, (counts.get(c) ?? 0) + 1);
  let perChar = 0;
  for (const n of counts.values()) {
    const p = n / chars.length;
    perChar -= p * Math.log2(p);
  }
  return perChar * chars.length;
}

/** Over half the neighbouring characters equal or one apart (`aaaa`, `abcd`, `4321`): typed, not drawn. */
function patterned(value: string): boolean {
  let steps = 0;
  for (let i = 1; i < value.length; i++) {
    if (Math.abs(value.charCodeAt(i) - value.charCodeAt(i - 1)) <= 1) steps++;
  }
  if (steps * 2 > value.length - 1) return true;
  // A short block repeated (`secretsecret…`, `ab12ab12…`) is as guessable as the block.
  for (let size = 1; size <= value.length / 3; size++) {
    if (
      value
        .slice(0, size)
        .repeat(Math.ceil(value.length / size))
        .startsWith(value)
    )
      return true;
  }
  return false;
}
