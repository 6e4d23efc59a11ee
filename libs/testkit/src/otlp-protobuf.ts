/**
 * OTLP/HTTP's protobuf encoding of traces (ExportTraceServiceRequest), read into the shape of its
 * JSON encoding: services export protobuf by default, and a benchmark that measured JSON export
 * would measure a path production does not take. Only the fields the receiver reports are read;
 * the rest are skipped by their wire type, as protobuf readers do with fields they do not know.
 * Field numbers: opentelemetry-proto, trace/v1/trace.proto and common/v1/common.proto.
 */

interface Field {
  readonly number: number;
  /** Varints and fixed-width numbers as bigint; length-delimited fields as their bytes. */
  readonly value: bigint | Uint8Array;
}

function* fields(buf: Uint8Array): Generator<Field> {
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (at >= buf.length) throw new Error("protobuf: truncated varint");
      const byte = buf[at++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
    }
  };
  const fixed = (bytes: number): bigint => {
    if (at + bytes > buf.length) throw new Error("protobuf: truncated fixed field");
    const view = new DataView(buf.buffer, buf.byteOffset + at, bytes);
    at += bytes;
    return bytes === 8 ? view.getBigUint64(0, true) : BigInt(view.getUint32(0, true));
  };
  while (at < buf.length) {
    const key = Number(varint());
    const number = key >>> 3;
    switch (key & 7) {
      case 0:
        yield { number, value: varint() };
        break;
      case 1:
        yield { number, value: fixed(8) };
        break;
      case 2: {
        const length = Number(varint());
        if (at + length > buf.length) throw new Error("protobuf: truncated length-delimited field");
        yield { number, value: buf.subarray(at, at + length) };
        at += length;
        break;
      }
      case 5:
        yield { number, value: fixed(4) };
        break;
      default:
        throw new Error(`protobuf: wire type ${key & 7} is not used by OTLP`);
    }
  }
}

const bytesOf = (v: bigint | Uint8Array): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array());
const text = (v: bigint | Uint8Array): string => new TextDecoder().decode(bytesOf(v));
const hex = (v: bigint | Uint8Array): string => Buffer.from(bytesOf(v)).toString("hex");
const int = (v: bigint | Uint8Array): bigint => (typeof v === "bigint" ? v : 0n);

type Value = { stringValue?: string; boolValue?: boolean; intValue?: string; doubleValue?: number };

function anyValue(buf: Uint8Array): Value {
  for (const f of fields(buf)) {
    if (f.number === 1) return { stringValue: text(f.value) };
    if (f.number === 2) return { boolValue: int(f.value) !== 0n };
    if (f.number === 3) return { intValue: BigInt.asIntN(64, int(f.value)).toString() };
    if (f.number === 4) {
      const view = new DataView(new ArrayBuffer(8));
      view.setBigUint64(0, int(f.value), true);
      return { doubleValue: view.getFloat64(0, true) };
    }
  }
  return {};
}

function keyValue(buf: Uint8Array): { key: string; value: Value } {
  let key = "";
  let value: Value = {};
  for (const f of fields(buf)) {
    if (f.number === 1) key = text(f.value);
    else if (f.number === 2) value = anyValue(bytesOf(f.value));
  }
  return { key, value };
}

function span(buf: Uint8Array) {
  const out = {
    traceId: "",
    spanId: "",
    parentSpanId: "",
    name: "",
    kind: 0,
    attributes: [] as Array<{ key: string; value: Value }>,
    status: {} as { code?: number; message?: string },
  };
  for (const f of fields(buf)) {
    if (f.number === 1) out.traceId = hex(f.value);
    else if (f.number === 2) out.spanId = hex(f.value);
    else if (f.number === 4) out.parentSpanId = hex(f.value);
    else if (f.number === 5) out.name = text(f.value);
    else if (f.number === 6) out.kind = Number(int(f.value));
    else if (f.number === 9) out.attributes.push(keyValue(bytesOf(f.value)));
    else if (f.number === 15)
      for (const s of fields(bytesOf(f.value))) {
        if (s.number === 2) out.status.message = text(s.value);
        else if (s.number === 3) out.status.code = Number(int(s.value));
      }
  }
  return out;
}

/** An ExportTraceServiceRequest as OTLP/JSON would have carried it (the fields a receiver reports). */
export function decodeTraceRequest(buf: Uint8Array) {
  const resourceSpans = [];
  for (const rs of fields(buf)) {
    if (rs.number !== 1) continue;
    const resource = { attributes: [] as Array<{ key: string; value: Value }> };
    const scopeSpans = [];
    for (const f of fields(bytesOf(rs.value))) {
      if (f.number === 1) {
        for (const a of fields(bytesOf(f.value)))
          if (a.number === 1) resource.attributes.push(keyValue(bytesOf(a.value)));
      } else if (f.number === 2) {
        const spans = [];
        for (const s of fields(bytesOf(f.value))) if (s.number === 2) spans.push(span(bytesOf(s.value)));
        scopeSpans.push({ spans });
      }
    }
    resourceSpans.push({ resource, scopeSpans });
  }
  return { resourceSpans };
}
