/**
 * A reader of the Prometheus text exposition format (0.0.4), strict enough
 * to tell a valid scrape from an invalid one: every sample belongs to a
 * metric family announced by `# TYPE`, names and labels are well formed,
 * values are numbers. For tests and benchmarks that read `/metrics`.
 */

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: ParsedSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export class MetricsFormatError extends Error {
  override readonly name = 'MetricsFormatError';
  readonly code = 'METRICS_FORMAT';
  constructor(line: number, why: string) {
    super(`line ${line}: ${why}`);
  }
}

function familyOf(sample: string, families: Map<string, ParsedFamily>): ParsedFamily | undefined {
  const direct = families.get(sample);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue;
    const f = families.get(sample.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
  }
  return undefined;
}

/** As Prometheus reads values (Go's ParseFloat): NaN and Inf in any case (prom-client writes `Nan`). */
function parseValue(s: string): number {
  const l = s.toLowerCase();
  if (l === 'nan') return NaN;
  if (l === '+inf' || l === 'inf') return Infinity;
  if (l === '-inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return Number.NaN;
  return Number(s);
}

/** Parses a whole scrape; throws MetricsFormatError at the first bad line. */
export function parsePrometheusText(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const no = i + 1;
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // a comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new MetricsFormatError(no, `bad metric name ${JSON.stringify(name)}`);
      const f = families.get(name) ?? { name, type: 'untyped' as const, help: '', samples: [] };
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new MetricsFormatError(no, `bad type ${JSON.stringify(rest)}`);
        if (f.samples.length > 0) throw new MetricsFormatError(no, `TYPE of ${name} after its samples`);
        f.type = rest as ParsedFamily['type'];
      } else f.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      families.set(name, f);
      continue;
    }
    let j = 0;
    while (j < line.length && line[j] !== '{' && line[j] !== ' ') j++;
    const name = line.slice(0, j);
    if (!NAME.test(name)) throw new MetricsFormatError(no, `bad sample name ${JSON.stringify(name)}`);
    const labels: Record<string, string> = {};
    if (line[j] === '{') {
      j++;
      for (;;) {
        if (line[j] === '}') {
          j++;
          break;
        }
        const eq = line.indexOf('=', j);
        if (eq < 0) throw new MetricsFormatError(no, 'label without value');
        const label = line.slice(j, eq);
        if (!LABEL.test(label)) throw new MetricsFormatError(no, `bad label name ${JSON.stringify(label)}`);
        if (line[eq + 1] !== '"') throw new MetricsFormatError(no, `label ${label} value not quoted`);
        let k = eq + 2;
        let v = '';
        for (; k < line.length && line[k] !== '"'; k++) {
          if (line[k] === '\\') {
            const n = line[++k];
            if (n !== 'n' && n !== '"' && n !== '\\') throw new MetricsFormatError(no, `bad escape \\${n ?? ''}`);
            v += n === 'n' ? '\n' : n;
          } else v += line[k];
        }
        if (line[k] !== '"') throw new MetricsFormatError(no, `label ${label} value not closed`);
        if (label in labels) throw new MetricsFormatError(no, `label ${label} twice`);
        labels[label] = v;
        j = k + 1;
        if (line[j] === ',') j++;
        else if (line[j] !== '}') throw new MetricsFormatError(no, 'expected , or } after a label');
      }
    }
    if (line[j] !== ' ') throw new MetricsFormatError(no, 'expected a space before the value');
    const parts = line.slice(j + 1).trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2) throw new MetricsFormatError(no, 'expected a value and an optional timestamp');
    const raw = parts[0]!;
    const value = parseValue(raw);
    if (Number.isNaN(value) && raw.toLowerCase() !== 'nan') throw new MetricsFormatError(no, `bad value ${JSON.stringify(raw)}`);
    const f = familyOf(name, families);
    if (!f) throw new MetricsFormatError(no, `sample ${name} without a TYPE`);
    f.samples.push({ name, labels, value });
  }
  return families;
}

/** The value of one sample: the sample named `name` (default: the family) whose labels include `labels`. */
export function sampleValue(families: Map<string, ParsedFamily>, family: string, labels: Record<string, string> = {}, name = family): number | undefined {
  const f = families.get(family);
  const s = f?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}
