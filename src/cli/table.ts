/**
 * The one table renderer of the CLI: aligned columns, numbers right and
 * rounded for reading, text left, `-` for a missing value. `--json` output
 * never goes through here (it keeps the full values).
 */

export type Cell = string | number | boolean | null | undefined;
export type Row = Record<string, Cell>;

export interface Column {
  key: string;
  /** Header; default the key. */
  title?: string;
  /** Default: right when every value is a number, else left. */
  align?: 'left' | 'right';
}

/**
 * A number as a person reads it: integers whole; other values with at most
 * three significant decimals below 1 (0.333, 0.0123) and two above
 * (12.35), trailing zeros dropped.
 */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return String(n);
  const abs = Math.abs(n);
  const s = abs >= 1 ? n.toFixed(2) : abs === 0 ? '0' : n.toPrecision(3);
  const plain = s.includes('e') ? n.toFixed(6) : s;
  return plain.includes('.') ? plain.replace(/0+$/, '').replace(/\.$/, '') : plain;
}

export function formatCell(v: Cell): string {
  if (v === null || v === undefined || v === '') return '-';
  if (typeof v === 'number') return formatNumber(v);
  return String(v);
}

/** `850 ms`, `42 s`, `5 min`, `3 h 20 min`, `2 d 4 h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${Math.floor(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** `5 min ago`; `just now` under a second; `in the future` for clock skew. */
export function formatAge(thenMs: number, nowMs: number): string {
  const d = nowMs - thenMs;
  if (d < -1000) return 'in the future (clock skew?)';
  if (d < 1000) return 'just now';
  return `${formatDuration(d)} ago`;
}

/** Rows as aligned lines: header, a rule, then one line per row; `(no rows)` when empty. */
export function renderTable(columns: Array<Column | string>, rows: Row[], opts: { indent?: string } = {}): string[] {
  const cols: Column[] = columns.map((c) => (typeof c === 'string' ? { key: c } : c));
  if (rows.length === 0) return [`${opts.indent ?? ''}(no rows)`];
  const indent = opts.indent ?? '';
  const titles = cols.map((c) => c.title ?? c.key);
  const cells = rows.map((r) => cols.map((c) => formatCell(r[c.key])));
  const widths = cols.map((_, i) => Math.max(titles[i]!.length, ...cells.map((row) => row[i]!.length)));
  const right = cols.map((c) => (c.align ? c.align === 'right' : rows.every((r) => r[c.key] === null || r[c.key] === undefined || typeof r[c.key] === 'number')));
  const line = (vals: string[]) =>
    indent +
    vals
      .map((v, i) => (right[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(titles), indent + widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
}
