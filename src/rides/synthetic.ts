/**
 * Deterministic synthetic NYC green-taxi rides.
 *
 * Pure (no I/O): the same (month, seed) always yields the same rides, and row i depends
 * only on (month, seed, i), so generating 100 rows yields the prefix of generating 1000.
 *
 * The "city" (zone popularity, zone positions, congestion) is fixed and independent of
 * month and seed, so a model trained on one month generalises to another. The ground
 * truth behind durations, fares and tips is a hidden function of distance, the
 * (PU, DO) zone pair and the pickup hour, plus noise and a few outliers.
 */

export interface Ride {
  ride_id: number;
  lpep_pickup_datetime: string;
  lpep_dropoff_datetime: string;
  PULocationID: number;
  DOLocationID: number;
  trip_distance: number;
  fare_amount: number;
  tip_amount: number;
  passenger_count: number;
  payment_type: number;
}

export const RIDE_COLUMNS = [
  'ride_id',
  'lpep_pickup_datetime',
  'lpep_dropoff_datetime',
  'PULocationID',
  'DOLocationID',
  'trip_distance',
  'fare_amount',
  'tip_amount',
  'passenger_count',
  'payment_type',
] as const satisfies readonly (keyof Ride)[];

export const ZONE_COUNT = 265;

const MONTH_RE = /^(\d{4})-(\d{2})$/;

function parseMonth(month: string): { year: number; month: number } {
  const m = MONTH_RE.exec(month);
  if (!m) throw new Error(`invalid month "${month}": expected YYYY-MM`);
  const year = Number(m[1]);
  const mm = Number(m[2]);
  if (mm < 1 || mm > 12) throw new Error(`invalid month "${month}": month must be 01..12`);
  return { year, month: mm };
}

/** First ride_id of a month is rideIdBase(month) + 1; months never collide (< 10M rows each). */
export function rideIdBase(month: string): number {
  const { year, month: mm } = parseMonth(month);
  return (year * 100 + mm) * 10_000_000;
}

// ---------------------------------------------------------------------------
// PRNG: a 32-bit integer hash for seeding plus a small xorshift-multiply stream.

function hash32(a: number): number {
  let x = a | 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function hashMix(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) h = hash32((h ^ hash32(p | 0)) + 0x632be5ab);
  return h;
}

/** Small counter-based stream (mulberry32-style), state kept in a closure-free object. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** uniform in [0, 1) */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** standard normal (Box-Muller, one value per call) */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function unitHash(...parts: number[]): number {
  return hashMix(...parts) / 4294967296;
}

// ---------------------------------------------------------------------------
// The fixed city.

const CITY_SEED = 20_240_101;

interface City {
  /** cumulative popularity over zones 1..265 (index 0 = zone 1) */
  cumPop: Float64Array;
  x: Float64Array;
  y: Float64Array;
  /** congestion of each zone, about 0.85..1.45 (busy zones are more congested) */
  cong: Float64Array;
  /** tip generosity of each zone, about 0.8..1.2 */
  generosity: Float64Array;
}

function buildCity(): City {
  const n = ZONE_COUNT;
  const rng = new Rng(CITY_SEED);
  // a fixed random ranking of zones; popularity is Zipf-like over that ranking
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const pop = new Float64Array(n);
  const rankOf = new Int32Array(n);
  order.forEach((zone, rank) => {
    rankOf[zone] = rank;
    pop[zone] = 1 / Math.pow(rank + 2, 1.15);
  });
  const cumPop = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) {
    acc += pop[i]!;
    cumPop[i] = acc;
  }
  for (let i = 0; i < n; i++) cumPop[i] = cumPop[i]! / acc;
  cumPop[n - 1] = 1;

  // positions in miles over a ~24 x 24 mile area; popular zones cluster near a core
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  const cong = new Float64Array(n);
  const generosity = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const centrality = 1 - rankOf[i]! / n; // 1 = most popular
    const radius = 1 + 11 * Math.pow(1 - centrality, 0.8) * (0.6 + 0.4 * rng.next());
    const angle = 2 * Math.PI * rng.next();
    x[i] = radius * Math.cos(angle);
    y[i] = radius * Math.sin(angle);
    cong[i] = 0.85 + 0.45 * centrality + 0.15 * (rng.next() - 0.5);
    generosity[i] = 0.8 + 0.4 * rng.next();
  }
  return { cumPop, x, y, cong, generosity };
}

const CITY = buildCity();

function sampleZone(u: number): number {
  const cum = CITY.cumPop;
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo + 1;
}

/** Hidden congestion factor of a (PU, DO) pair: about 0.75..1.7. */
function pairCongestion(pu: number, dor: number): number {
  const a = CITY.cong[pu - 1]!;
  const b = CITY.cong[dor - 1]!;
  const pairNoise = 0.85 + 0.3 * unitHash(CITY_SEED, pu, dor);
  return Math.sqrt(a * a * b) * pairNoise;
}

// relative pickup volume per hour of day (UTC stands in for local time here)
const HOUR_PROFILE = [0.9, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.4, 3.2, 3.1, 2.9, 3.0, 3.2, 3.3, 3.6, 4.0, 4.3, 4.6, 4.7, 4.2, 3.4, 2.6, 2.0, 1.4];
const HOUR_CUM = (() => {
  const c = new Float64Array(24);
  const total = HOUR_PROFILE.reduce((s, v) => s + v, 0);
  let acc = 0;
  HOUR_PROFILE.forEach((v, h) => {
    acc += v / total;
    c[h] = acc;
  });
  c[23] = 1;
  return c;
})();

/** base street speed (mph) by hour: slow at rush hours, fast at night */
const HOUR_SPEED = [17, 18, 19, 19, 19, 17, 14, 11, 10, 10.5, 11.5, 11.5, 11, 11, 10.5, 10, 9.5, 9.5, 10, 11, 12.5, 14, 15, 16];

function sampleHour(u: number): number {
  for (let h = 0; h < 24; h++) if (u < HOUR_CUM[h]!) return h;
  return 23;
}

const PASSENGER_CUM = [0.72, 0.86, 0.91, 0.94, 0.98, 1];

// ---------------------------------------------------------------------------
// Timestamps.

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** civil date from days since 1970-01-01 (proleptic Gregorian) */
function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return [y, m, d];
}

/** 'YYYY-MM-DD HH:MM:SS' of a UTC epoch in whole seconds */
export function formatTimestamp(epochSeconds: number): string {
  const days = Math.floor(epochSeconds / 86400);
  let rem = epochSeconds - days * 86400;
  const [y, m, d] = civilFromDays(days);
  const hh = Math.floor(rem / 3600);
  rem -= hh * 3600;
  const mi = Math.floor(rem / 60);
  const ss = rem - mi * 60;
  return `${y}-${pad2(m)}-${pad2(d)} ${pad2(hh)}:${pad2(mi)}:${pad2(ss)}`;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

// ---------------------------------------------------------------------------
// The generator.

export interface GenerateOptions {
  rows: number;
  month: string;
  seed?: number;
}

/**
 * Rides of one month, in ride_id order. Arguments are validated at the call (not lazily at
 * the first next()), so a bad month or row count throws right away.
 */
export function generateRides(opts: GenerateOptions): Generator<Ride> {
  const { rows } = opts;
  const seed = opts.seed ?? 1;
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`rows must be a non-negative integer, got ${rows}`);
  if (rows > 9_999_999) throw new Error(`rows must be < 10,000,000 per month, got ${rows}`);
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  const { year, month } = parseMonth(opts.month);
  const base = rideIdBase(opts.month);
  const monthStartDays = Math.floor(Date.UTC(year, month - 1, 1) / 86400000);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const streamSeed = hashMix(seed, year * 100 + month);
  return (function* () {
    for (let i = 0; i < rows; i++) yield makeRide(i, base, streamSeed, monthStartDays, daysInMonth);
  })();
}

function makeRide(i: number, base: number, streamSeed: number, monthStartDays: number, daysInMonth: number): Ride {
  const rng = new Rng(hashMix(streamSeed, i));

  // when
  const day = rng.int(daysInMonth);
  const hour = sampleHour(rng.next());
  const secondInHour = rng.int(3600);
  const weekday = (((monthStartDays + day + 3) % 7) + 7) % 7; // 0 = Monday
  const weekend = weekday >= 5;
  const pickup = (monthStartDays + day) * 86400 + hour * 3600 + secondInHour;

  // where
  const pu = sampleZone(rng.next());
  // drop-off zone drawn from the same popularity; a fifth of rides stay within the pickup zone
  let dor = sampleZone(rng.next());
  if (rng.next() < 0.2) dor = pu;
  const dx = CITY.x[pu - 1]! - CITY.x[dor - 1]!;
  const dy = CITY.y[pu - 1]! - CITY.y[dor - 1]!;
  const straight = Math.sqrt(dx * dx + dy * dy);

  // how far: road distance ~ 1.3 x straight line, lognormal noise; short hops within a zone
  let distance: number;
  if (pu === dor) distance = Math.exp(-0.1 + 0.6 * rng.normal());
  else distance = (0.4 + 1.3 * straight) * Math.exp(0.25 * rng.normal());
  if (rng.next() < 0.004) distance = 0; // meter glitches, as in the real data
  distance = round2(Math.min(distance, 80));

  // how long (hidden truth): faster on longer (highway) trips, slower when congested
  const speedHour = HOUR_SPEED[hour]! * (weekend ? 1.12 : 1);
  const longTripBoost = 1 + 1.8 * (1 - Math.exp(-distance / 6));
  const speed = (speedHour * longTripBoost) / pairCongestion(pu, dor);
  let minutes = (2 + (60 * distance) / speed) * Math.exp(0.15 * rng.normal());
  const outlier = rng.next();
  if (outlier < 0.005)
    minutes = 0.05 + rng.next() * 0.9; // cancelled / instant
  else if (outlier < 0.01) minutes = 60 + rng.next() * 400; // forgotten meter
  const durationSeconds = Math.max(1, Math.round(minutes * 60));
  const dropoff = pickup + durationSeconds;
  const durMin = durationSeconds / 60;

  // fare: base + per mile + per minute + noise
  const fare = round2(Math.max(3, 3 + 1.75 * distance + 0.35 * durMin + 0.8 * rng.normal()));

  // who pays how
  const pcU = rng.next();
  let passengers = 1;
  while (passengers < 6 && pcU >= PASSENGER_CUM[passengers - 1]!) passengers++;
  const payment = rng.next() < 0.7 ? 1 : 2;
  let tip = 0;
  if (payment === 1) {
    const tipper = rng.next();
    const rate = 0.18 * CITY.generosity[pu - 1]! * (1 + 0.15 * rng.normal());
    tip = tipper < 0.1 ? 0 : round2(Math.max(0, fare * rate + 0.3 * rng.normal()));
  }

  return {
    ride_id: base + i + 1,
    lpep_pickup_datetime: formatTimestamp(pickup),
    lpep_dropoff_datetime: formatTimestamp(dropoff),
    PULocationID: pu,
    DOLocationID: dor,
    trip_distance: distance,
    fare_amount: fare,
    tip_amount: tip,
    passenger_count: passengers,
    payment_type: payment,
  };
}

/** One CSV line (no newline) in RIDE_COLUMNS order; no field needs quoting. */
export function rideToCsvLine(r: Ride): string {
  return `${r.ride_id},${r.lpep_pickup_datetime},${r.lpep_dropoff_datetime},${r.PULocationID},${r.DOLocationID},${r.trip_distance},${r.fare_amount},${r.tip_amount},${r.passenger_count},${r.payment_type}`;
}
