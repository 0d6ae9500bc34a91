import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { confirmOnTerminal } from '../../src/cli/confirm.ts';
import { ExitCode, exitCodeFor } from '../../src/cli/exit.ts';
import { ConfigError, LarsError, ErrorCode, NatsUnreachableError, RegistryError, UsageError } from '../../src/lib/errors.ts';
import { parseHost } from '../../src/cli/commands/route.ts';
import { parsePartitions } from '../../src/cli/commands/node.ts';
import { routeRmCommand } from '../../src/cli/commands/route.ts';
import { defaultConfig } from '../../src/lib/config.ts';
import type { CommandContext } from '../../src/cli/command.ts';

describe('cli - exit codes, confirmation, argument parsing', () => {
  it('cli - usage and config errors exit 2, everything else 1', () => {
    expect(exitCodeFor(new UsageError('x'))).to.equal(ExitCode.usage);
    expect(exitCodeFor(new ConfigError('x'))).to.equal(ExitCode.usage);
    expect(exitCodeFor(new NatsUnreachableError('nats://x:1'))).to.equal(ExitCode.failure);
    expect(exitCodeFor(new RegistryError('x'))).to.equal(ExitCode.failure);
    expect(exitCodeFor(new LarsError(ErrorCode.noRoute, 'x'))).to.equal(ExitCode.failure);
    expect(exitCodeFor(new Error('x'))).to.equal(ExitCode.failure);
    expect(exitCodeFor('thrown string')).to.equal(ExitCode.failure);
  });

  it('cli - a yes/no question is asked only on a terminal', async () => {
    const notTty = Object.assign(new PassThrough(), { isTTY: false });
    expect(await confirmOnTerminal('delete?', { input: notTty, output: new PassThrough() })).to.equal(undefined);
    for (const [answer, expected] of [['y\n', true], ['YES\n', true], ['n\n', false], ['\n', false], ['whatever\n', false]] as const) {
      const input = Object.assign(new PassThrough(), { isTTY: true });
      const output = new PassThrough();
      let asked = '';
      output.on('data', (d: Buffer) => (asked += d.toString()));
      const p = confirmOnTerminal('delete route 1.2?', { input, output });
      input.write(answer);
      expect(await p, answer).to.equal(expected);
      expect(asked).to.contain('delete route 1.2? [y/N]');
    }
  });

  it('cli - route rm of a whole route without --yes asks, and refuses when nobody can answer', async () => {
    // parse errors come before any connection; with nobody to ask the command must not reach NATS silently
    const ctx = (confirm?: CommandContext['confirm']): CommandContext => ({
      config: { ...defaultConfig(), natsUrl: 'nats://127.0.0.1:1' },
      out: () => undefined,
      stopSignal: new Promise(() => undefined),
      ...(confirm ? { confirm } : {}),
    });
    let err: unknown;
    await routeRmCommand.run(['1', 'x'], {}, ctx()).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(UsageError);
    err = undefined;
    // unreachable NATS: exit 1, whatever the answer would be
    await routeRmCommand.run(['1', '2'], {}, ctx(async () => true)).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(NatsUnreachableError);
  });

  it('cli - hosts and partition ranges are refused with what is wrong and the limit', () => {
    expect(parseHost('10.0.0.1:80,7,z1')).to.deep.equal({ ip: '10.0.0.1', port: 80, weight: 7, zone: 'z1' });
    expect(parseHost('10.0.0.1:80,,z1')).to.deep.equal({ ip: '10.0.0.1', port: 80, weight: 100, zone: 'z1' });
    expect(() => parseHost('127.0.0.1:80,10,zone,extra')).to.throw(UsageError, /got 4 comma-separated fields/);
    expect(() => parseHost(`127.0.0.1:80,10,${'z'.repeat(65)}`)).to.throw(UsageError, /zone must be at most 64 characters, got 65/);
    expect(() => parseHost('127.0.0.1:80,1.5')).to.throw(UsageError, /weight must be an integer in 1..10000/);
    expect(() => parseHost('127.0.0.1:80,1e3')).to.throw(UsageError, /weight must be/);
    expect(parsePartitions('0-3,7', 8)).to.deep.equal([0, 1, 2, 3, 7]);
    expect(() => parsePartitions('5-2', 8)).to.throw(UsageError, /runs backwards; write 2-5/);
    expect(() => parsePartitions('6-9', 8)).to.throw(UsageError, /outside 0..7 \(the cluster has 8 partitions\)/);
  });
});
