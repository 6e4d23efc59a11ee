import { randomUUID } from "node:crypto";
import { errors, jwtVerify, SignJWT } from "jose";

export type TokenType = "access" | "refresh";

/**
 * Who a token is from and for: a token another system signed with a shared or leaked key, for
 * another audience, is refused even when its signature holds.
 */
export const TOKEN_ISSUER = "mikrom";
export const TOKEN_AUDIENCE = "mikrom-api";

export const ACCESS_TTL_SECONDS = 30 * 60;
/** How many verified tokens the gateway remembers (a few MiB at most). */
const VERIFIED_CACHE_SIZE = 10_000;
export const REFRESH_TTL_SECONDS = 7 * 24 * 60 * 60;

export interface TokenClaims {
  readonly userId: number;
  readonly type: TokenType;
  readonly jti: string;
  readonly expiresAt: Date;
  /** The user's token generation when it was issued: a lower one than the user's now is refused. */
  readonly generation: number;
}

export interface IssuedToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresAt: Date;
}

/** Why a token was refused; all of them are a 401 to the client. */
export class InvalidToken extends Error {
  override readonly name = "InvalidToken";
}

/**
 * HS256 access and refresh tokens. `type` keeps them apart: a refresh token is never accepted as
 * an access token and the other way round, even though both are signed with the same key.
 */
export class Tokens {
  readonly #key: Uint8Array;
  readonly #now: () => number;
  /**
   * Tokens whose signature and claims were checked, until they expire: a client sends the same
   * token on every request, and checking an HMAC through WebCrypto was the gateway's largest cost
   * after I/O. Revocation does not depend on it: the caller compares the generation with the user's.
   */
  readonly #verified = new Map<string, TokenClaims>();

  constructor(secret: string, now: () => number = Date.now) {
    this.#key = new TextEncoder().encode(secret);
    this.#now = now;
  }

  issue(
    userId: number,
    type: TokenType,
    options: { generation?: number; ttlSeconds?: number } = {},
  ): Promise<IssuedToken> {
    const ttl = options.ttlSeconds ?? (type === "access" ? ACCESS_TTL_SECONDS : REFRESH_TTL_SECONDS);
    const iat = Math.floor(this.#now() / 1000);
    const jti = randomUUID();
    return new SignJWT({ type, gen: options.generation ?? 0 })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(String(userId))
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttl)
      .setJti(jti)
      .sign(this.#key)
      .then((token) => ({ token, jti, expiresAt: new Date((iat + ttl) * 1000) }));
  }

  async verify(token: string, expected: TokenType): Promise<TokenClaims> {
    const known = this.#verified.get(token);
    if (known && known.expiresAt.getTime() <= this.#now()) this.#verified.delete(token);
    else if (known?.type === expected) return known;
    const claims = await this.#check(token, expected);
    if (this.#verified.size >= VERIFIED_CACHE_SIZE) {
      // The oldest entry goes (a Map iterates in insertion order).
      this.#verified.delete(this.#verified.keys().next().value as string);
    }
    this.#verified.set(token, claims);
    return claims;
  }

  async #check(token: string, expected: TokenType): Promise<TokenClaims> {
    let payload: Awaited<ReturnType<typeof jwtVerify>>["payload"];
    try {
      ({ payload } = await jwtVerify(token, this.#key, {
        algorithms: ["HS256"],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        currentDate: new Date(this.#now()),
      }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw new InvalidToken("Token has expired");
      throw new InvalidToken("Could not validate credentials");
    }
    if (payload.type !== expected) throw new InvalidToken(`Invalid token type (expected "${expected}")`);
    const userId = Number(payload.sub);
    // Tokens from before generations existed carry none: generation 0, ended by the first raise.
    const generation = payload.gen ?? 0;
    if (
      !Number.isSafeInteger(userId) ||
      userId <= 0 ||
      typeof payload.jti !== "string" ||
      !payload.exp ||
      !Number.isSafeInteger(generation)
    ) {
      throw new InvalidToken("Could not validate credentials");
    }
    return {
      userId,
      type: expected,
      jti: payload.jti,
      expiresAt: new Date(payload.exp * 1000),
      generation: generation as number,
    };
  }
}
