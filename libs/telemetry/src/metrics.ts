import {
  type BatchObservableCallback,
  type Meter,
  type MeterProvider,
  metrics,
  type Observable,
  type Histogram as OtelHistogram,
} from "@opentelemetry/api";
import { createLogger } from "./logger.ts";

/**
 * Metric instruments for services that never import @opentelemetry/api. The metrics API has no proxy
 * provider: an instrument taken from the global provider before startTelemetry (module scope, a
 * consumer started in a test before telemetry) would stay a no-op forever. So a histogram here finds
 * its SDK instrument again whenever the global provider changed, and gauge callbacks are kept in a
 * registry and attached again to each new provider (startTelemetry calls attachObservers()).
 */

/** Attribute values of a data point: keep them few and bounded (no ids, no subjects). */
export type MetricAttributes = Record<string, string | number | boolean>;

export interface InstrumentOptions {
  /** UCUM: `s` for durations, `{vm}`, `{message}`, `{address}` for counts of things. */
  unit: string;
  description: string;
}

export interface HistogramOptions extends InstrumentOptions {
  /** Bucket boundaries (default: the OTel HTTP duration buckets, 5 ms to 10 s). */
  boundaries?: readonly number[];
}

export interface Histogram {
  record(value: number, attributes?: MetricAttributes): void;
}

/** What a gauge callback reports: one value per attribute set. */
export type Observe<N extends string = string> = (
  name: N,
  value: number,
  attributes?: MetricAttributes,
) => void;

export interface GaugeRegistration {
  /** Stops observing (the gauge's series for these attributes then ends). Safe to call twice. */
  remove(): void;
}

/** The semantic conventions' duration buckets (http.server.request.duration, messaging.process.duration). */
export const DURATION_BUCKETS_S: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];

const METER_NAME = "@mikrom/telemetry";
const log = createLogger("mikrom.telemetry.metrics");

function meterOf(provider: MeterProvider): Meter {
  return provider.getMeter(METER_NAME);
}

/**
 * A histogram by name. Cheap to call at module scope; `record` costs one lookup of the global
 * provider on top of the SDK's own work.
 */
export function histogram(name: string, options: HistogramOptions): Histogram {
  let provider: MeterProvider | undefined;
  let instrument: OtelHistogram | undefined;
  return {
    record(value, attributes) {
      const current = metrics.getMeterProvider();
      if (current !== provider || !instrument) {
        provider = current;
        instrument = meterOf(current).createHistogram(name, {
          unit: options.unit,
          description: options.description,
          advice: { explicitBucketBoundaries: [...(options.boundaries ?? DURATION_BUCKETS_S)] },
        });
      }
      instrument.record(value, attributes);
    },
  };
}

interface Registration {
  readonly gauges: Readonly<Record<string, InstrumentOptions>>;
  readonly callback: (observe: Observe) => void | Promise<void>;
  attached?: { meter: Meter; callback: BatchObservableCallback; observables: Observable[] };
  failing: boolean;
}

const registrations = new Set<Registration>();
/** The provider the registrations are attached to, and its gauges by name (shared by registrations). */
let attachedTo: MeterProvider | undefined;
let gaugesOfProvider = new Map<string, Observable>();

function gauge(meter: Meter, name: string, options: InstrumentOptions): Observable {
  let found = gaugesOfProvider.get(name);
  if (!found) {
    found = meter.createObservableGauge(name, { unit: options.unit, description: options.description });
    gaugesOfProvider.set(name, found);
  }
  return found;
}

function detach(registration: Registration): void {
  const a = registration.attached;
  if (a) a.meter.removeBatchObservableCallback(a.callback, a.observables);
  registration.attached = undefined;
}

function attach(registration: Registration, provider: MeterProvider): void {
  const meter = meterOf(provider);
  const byName = new Map(
    Object.entries(registration.gauges).map(([name, options]) => [name, gauge(meter, name, options)]),
  );
  const callback: BatchObservableCallback = async (result) => {
    try {
      await registration.callback((name, value, attributes) => {
        const observable = byName.get(name);
        if (observable) result.observe(observable, value, attributes);
      });
      if (registration.failing) log.info({ gauges: [...byName.keys()] }, "gauge observation recovered");
      registration.failing = false;
    } catch (error) {
      // Once per failing spell, not once per export interval (NATS or PostgreSQL down for an hour).
      if (!registration.failing) {
        log.warn(
          { gauges: [...byName.keys()], error: (error as Error)?.message ?? String(error) },
          "gauge observation failed; nothing reported until it works again",
        );
      }
      registration.failing = true;
    }
  };
  const observables = [...byName.values()];
  meter.addBatchObservableCallback(callback, observables);
  registration.attached = { meter, callback, observables };
}

/**
 * (Re)attaches every gauge callback to the current global meter provider when it changed. Called by
 * startTelemetry once the SDK is installed, and on every registration.
 */
export function attachObservers(): void {
  const current = metrics.getMeterProvider();
  if (current === attachedTo) return;
  attachedTo = current;
  gaugesOfProvider = new Map();
  for (const registration of registrations) {
    detach(registration);
    attach(registration, current);
  }
}

/**
 * Observable gauges fed by one callback, called once per collection (the metric reader's interval,
 * `OTEL_METRIC_EXPORT_INTERVAL`): one query or one request can feed several gauges. The callback may
 * be async; if it throws, nothing is reported for that collection (and one warning is logged until
 * it works again). Remove the registration when what it reads goes away (a consumer stops, a pool closes).
 */
export function observeGauges<N extends string>(
  gauges: Readonly<Record<N, InstrumentOptions>>,
  callback: (observe: Observe<N>) => void | Promise<void>,
): GaugeRegistration {
  const registration: Registration = {
    gauges,
    callback: callback as (observe: Observe) => void | Promise<void>,
    failing: false,
  };
  registrations.add(registration);
  const current = metrics.getMeterProvider();
  if (current !== attachedTo) attachObservers();
  else attach(registration, current);
  return {
    remove() {
      if (!registrations.delete(registration)) return;
      detach(registration);
    },
  };
}

/** One observable gauge; see observeGauges. */
export function observeGauge(
  name: string,
  options: InstrumentOptions,
  callback: (observe: (value: number, attributes?: MetricAttributes) => void) => void | Promise<void>,
): GaugeRegistration {
  return observeGauges({ [name]: options }, (observe) =>
    callback((value, attributes) => observe(name, value, attributes)),
  );
}

export const httpServerDuration: Histogram = histogram("http.server.request.duration", {
  unit: "s",
  description: "Duration of HTTP server requests",
});
