import { expect } from 'chai';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadConfig, defaultConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';
import { RejectCounter } from '../../src/rejects.ts';
import { pino } from 'pino';
import { Writable } from 'node:stream';

describe('config - precedence and validation', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lars-cfg-'));
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ prefix: 'fromfile', partitions: 8, natsUrl: 'nats://10.1.1.1:4222' }));

  it('config - defaults, then file, then environment, then flags', () => {
    expect(loadConfig({ env: {} }).prefix).to.equal(defaultConfig().prefix);
    expect(loadConfig({ env: {}, file }).prefix).to.equal('fromfile');
    expect(loadConfig({ env: { LARS_PREFIX: 'fromenv' }, file }).prefix).to.equal('fromenv');
    expect(loadConfig({ env: { LARS_PREFIX: 'fromenv' }, file, flags: { prefix: 'fromflag' } }).prefix).to.equal('fromflag');
    expect(loadConfig({ env: { LARS_PARTITIONS: '16' }, file }).partitions).to.equal(16);
    expect(loadConfig({ env: {}, file }).natsUrl).to.equal('nats://10.1.1.1:4222');
  });

  it('config - bad values are ConfigErrors naming their source', () => {
    expect(() => loadConfig({ env: { LARS_PARTITIONS: 'x' } })).to.throw(ConfigError, /LARS_PARTITIONS must be an integer/);
    expect(() => loadConfig({ env: {}, flags: { partitions: '0' } })).to.throw(ConfigError, /partitions must be in/);
    expect(() => loadConfig({ env: {}, flags: { prefix: 'a.b' } })).to.throw(ConfigError, /prefix/);
    expect(() => loadConfig({ env: {}, flags: { nats: 'http://x' } })).to.throw(ConfigError, /bad NATS URL/);
    expect(() => loadConfig({ env: {}, file: join(dir, 'missing.json') })).to.throw(ConfigError, /cannot read config file/);
  });
});

describe('rejects - counted and rate-limited', () => {
  it('rejects - every rejection counts; one log line per kind per interval', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    });
    let now = 0;
    const r = new RejectCounter(pino({ level: 'info' }, sink), 1000, () => now);
    for (let i = 0; i < 100; i++) r.reject('malformed', 'bad', { payload: new Uint8Array(200) });
    r.reject('oversize', 'big');
    now = 1000;
    r.reject('malformed', 'bad');
    expect(r.count('malformed')).to.equal(101);
    expect(r.total()).to.equal(102);
    return new Promise<void>((resolve) => setImmediate(() => {
      expect(lines.map((l) => l['kind'])).to.deep.equal(['malformed', 'oversize', 'malformed']);
      expect(lines[2]!['suppressed']).to.equal(99);
      expect((lines[0]!['untrusted'] as string).length).to.equal(128); // 64 bytes, hex
      resolve();
    }));
  });
});
