/** The shipped NATS permissions (deploy/nats/permissions.conf) in tests: the role passwords it reads, set for a suite, and a server running it. */
import { randomBytes } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';

/** A fresh password for each role permissions.conf reads from the environment. */
export function rolePasswords(): { LARS_AGENT_PASSWORD: string; LARS_NODE_PASSWORD: string; LARS_SINK_PASSWORD: string; LARS_XDS_PASSWORD: string; LARS_ADMIN_PASSWORD: string } {
  const pw = (): string => `p${randomBytes(8).toString('hex')}`;
  return { LARS_AGENT_PASSWORD: pw(), LARS_NODE_PASSWORD: pw(), LARS_SINK_PASSWORD: pw(), LARS_XDS_PASSWORD: pw(), LARS_ADMIN_PASSWORD: pw() };
}

/** Sets these environment variables; the function returned puts back what was there before. */
export function setEnvironment(vars: Record<string, string>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

/**
 * A nats-server on the shipped permissions.conf as is, written into `dir`
 * (nats-server resolves includes relative to the including file); its
 * passwords come from the environment, so set them first.
 */
export function startPermissionsServer(dir: string): Promise<NatsServer> {
  copyFileSync(new URL('../../deploy/nats/permissions.conf', import.meta.url), join(dir, 'permissions.conf'));
  writeFileSync(join(dir, 'server.conf'), 'include permissions.conf\n');
  return startNatsServer({ args: ['-c', join(dir, 'server.conf')] });
}
