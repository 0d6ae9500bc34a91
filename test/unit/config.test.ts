import { expect } from 'chai';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadConfig, defaultConfig } from '../../src/lib/config.ts';
import { ConfigError } from '../../src/lib/errors.ts';
import { RejectCounter } from '../../src/lib/rejects.ts';
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
    expect(() => loadConfig({ env: { LARS_LOG_LEVEL: 'loud' } })).to.throw(ConfigError, /LARS_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "loud"/);
    expect(() => loadConfig({ env: {}, flags: { 'log-format': 'xml' } })).to.throw(ConfigError, /--log-format must be one of auto, json, pretty/);
    expect(() => loadConfig({ env: {}, flags: { partitions: '8x' } })).to.throw(ConfigError, /--partitions must be an integer, got "8x"/);
  });

  it('config - range and format checks name where the value came from', () => {
    const f = join(dir, 'range.json');
    writeFileSync(f, JSON.stringify({ partitions: 0, replicas: '9' }));
    expect(() => loadConfig({ env: {}, file: f })).to.throw(ConfigError, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:partitions must be in 1\\.\\.4096, got 0$`));
    expect(() => loadConfig({ env: { LARS_PARTITIONS: '0' } })).to.throw(ConfigError, /^LARS_PARTITIONS must be in 1\.\.4096, got 0$/);
    expect(() => loadConfig({ env: {}, flags: { prefix: 'a.b' } })).to.throw(ConfigError, /^--prefix must be one token/);
    expect(() => loadConfig({ env: {}, flags: { nats: 'notaurl' } })).to.throw(ConfigError, /^bad NATS URL "notaurl" in --nats: use nats:\/\/host:port/);
    expect(() => loadConfig({ env: { LARS_CLICKHOUSE_URL: 'ftp://x' } })).to.throw(ConfigError, /^LARS_CLICKHOUSE_URL must start with http:\/\/ or https:\/\//);
    expect(() => loadConfig({ env: {}, flags: { replicas: '9' } })).to.throw(ConfigError, /^--replicas must be auto or a count from 1 to 5, got "9"$/);
  });

  it('config - a missing or broken config file is named with what is wrong', () => {
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{bad json');
    expect(() => loadConfig({ env: {}, file: join(dir, 'missing.json') })).to.throw(ConfigError, /^cannot read config file .*missing\.json: there is no such file$/);
    expect(() => loadConfig({ env: {}, file: broken })).to.throw(ConfigError, /^cannot read config file .*broken\.json: it is not JSON \(/);
  });

  it('config - a config file holds known keys of the right type only', () => {
    const write = (name: string, v: unknown) => {
      const f = join(dir, name);
      writeFileSync(f, JSON.stringify(v));
      return f;
    };
    expect(() => loadConfig({ env: {}, file: write('typo.json', { prefx: 'a' }) })).to.throw(ConfigError, /typo\.json: unknown key "prefx"; did you mean "prefix"\?/);
    expect(() => loadConfig({ env: {}, file: write('natsurl.json', { natsURL: 'nats://x:1' }) })).to.throw(ConfigError, /did you mean "natsUrl"\?/);
    expect(() => loadConfig({ env: {}, file: write('far.json', { colour: 'red' }) })).to.throw(ConfigError, /unknown key "colour" \(known: natsUrl, prefix/);
    expect(() => loadConfig({ env: {}, file: write('types.json', { partitions: '8', prefix: 3 }) })).to.throw(
      ConfigError,
      /partitions must be an integer \(a JSON number\), got a string \("8"\); prefix must be a string, got a number \(3\)/,
    );
    expect(() => loadConfig({ env: {}, file: write('array.json', [1]) })).to.throw(ConfigError, /must hold a JSON object, got an array/);
    expect(loadConfig({ env: {}, file: write('ok.json', { logFormat: 'json', logLevel: 'debug', partitions: 16 }) })).to.include({ logFormat: 'json', logLevel: 'debug', partitions: 16 });
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
