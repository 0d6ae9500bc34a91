/**
 * NATS logins without a server: credentials taken out of URLs, URLs shown
 * without their secrets, the SDK's options against the environment, and the
 * files of the config (NKey seed, .creds) read and checked.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { redactNatsUrl, takeUrlLogin, hasUrlLogin } from '../../src/lib/nats-url.ts';
import { connectNats, natsOptionsFromConfig, natsOptionsFromSdk } from '../../src/nats/connect.ts';
import { defaultConfig, loadConfig } from '../../src/lib/config.ts';
import { ConfigError, JetStreamDisabledError, NatsAuthError, NatsHint, NatsUnreachableError } from '../../src/lib/errors.ts';

describe('nats login - URLs, options and files', () => {
  let dir: string;
  const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lars-login-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('nats login - a URL is shown with its password or token replaced, the rest as it is', () => {
    expect(redactNatsUrl('nats://admin:s3cret@127.0.0.1:4222')).to.equal('nats://admin:***@127.0.0.1:4222');
    expect(redactNatsUrl('nats://t0ken@127.0.0.1:4222')).to.equal('nats://***@127.0.0.1:4222');
    expect(redactNatsUrl('tls://a:p%40ss@h1:4222,nats://h2:4222, b:q@h3:4222')).to.equal('tls://a:***@h1:4222,nats://h2:4222, b:***@h3:4222');
    // a password holding an @ is still hidden whole
    expect(redactNatsUrl('nats://u:p@w@host:1')).to.equal('nats://u:***@host:1');
    expect(redactNatsUrl('nats://127.0.0.1:4222')).to.equal('nats://127.0.0.1:4222');
    // shown twice, still the same
    expect(redactNatsUrl(redactNatsUrl('nats://admin:pw@h:1'))).to.equal('nats://admin:***@h:1');
  });

  it('nats login - credentials come out of a URL: user and password, or a token (decoded)', () => {
    expect(takeUrlLogin('nats://admin:p%40ss@127.0.0.1:4222')).to.deep.equal({ url: 'nats://127.0.0.1:4222', login: { user: 'admin', pass: 'p@ss' } });
    expect(takeUrlLogin('nats://tok@127.0.0.1:4222')).to.deep.equal({ url: 'nats://127.0.0.1:4222', login: { token: 'tok' } });
    expect(takeUrlLogin('127.0.0.1:4222')).to.deep.equal({ url: '127.0.0.1:4222' });
    expect(hasUrlLogin('nats://h:1, nats://a:b@h:2')).to.equal(true);
    expect(hasUrlLogin('nats://h:1,nats://h:2')).to.equal(false);
  });

  it('nats login - the errors that show a URL never show its secret, and name the settings of who connects', () => {
    const url = 'nats://admin:hunter2@127.0.0.1:4222';
    for (const e of [new NatsAuthError(url), new NatsAuthError(url, { hint: NatsHint.sdk }), new NatsUnreachableError(url), new NatsUnreachableError(url, { hint: NatsHint.sdk }), new JetStreamDisabledError(url)]) {
      expect(e.message).not.to.contain('hunter2');
      expect(e.message).to.contain('nats://admin:***@127.0.0.1:4222');
    }
    expect(new NatsAuthError(url).message).to.contain('--nats-user').and.contain('LARS_NATS_CREDS');
    const sdk = new NatsAuthError(url, { hint: NatsHint.sdk, as: 'as user "admin"' }).message;
    expect(sdk).to.contain('createAgent').and.contain('credsFile').and.contain('as user "admin"').and.not.contain('--nats-user');
    expect(new NatsUnreachableError(url, { hint: NatsHint.sdk }).message).to.contain("createAgent's servers").and.not.contain('--nats');
  });

  it('nats login - a bad URL with credentials in the config is named without its password', () => {
    expect(() => loadConfig({ env: {}, flags: { nats: 'http://admin:hunter2@h:1' } }))
      .to.throw(ConfigError, /bad NATS URL "http:\/\/admin:\*\*\*@h:1"/)
      .with.property('message')
      .that.does.not.contain('hunter2');
    expect(loadConfig({ env: { LARS_NATS_URL: 'nats://admin:pw@127.0.0.1:4222' } }).natsUrl).to.equal('nats://admin:pw@127.0.0.1:4222');
    expect(loadConfig({ env: { LARS_NATS_TOKEN: 't', LARS_NATS_NKEY: '/k', LARS_NATS_CREDS: '/c' } })).to.include({ natsToken: 't', natsNkey: '/k', natsCreds: '/c' });
  });

  it('nats login - the SDK takes its options first, the environment only for what they leave out', () => {
    const env = { LARS_NATS_USER: 'envuser', LARS_NATS_PASS: 'envpass' };
    expect(natsOptionsFromSdk('nats://h:1', {}, env)).to.deep.include({ user: 'envuser', pass: 'envpass', hint: NatsHint.sdk });
    // an explicit login of any kind replaces the environment's whole
    const tok = natsOptionsFromSdk('nats://h:1', { token: 'abc' }, env);
    expect(tok).to.include({ token: 'abc' });
    expect(tok).not.to.have.property('user');
    // so does a URL that carries one
    expect(natsOptionsFromSdk('nats://u:p@h:1', {}, env)).not.to.have.property('user');
    expect(natsOptionsFromSdk('nats://h:1', {}, { LARS_NATS_TOKEN: 'envtok' })).to.include({ token: 'envtok' });
    const seedFile = join(dir, 'user.nk');
    writeFileSync(seedFile, `# my user\n${seed}\n`);
    expect(natsOptionsFromSdk('nats://h:1', { nkeySeedFile: seedFile }, {})).to.include({ nkeySeed: seed });
    expect(natsOptionsFromSdk('nats://h:1', {}, { LARS_NATS_NKEY: seedFile })).to.include({ nkeySeed: seed });
    expect(natsOptionsFromSdk('nats://h:1', { nkeySeed: seed }, {})).to.include({ nkeySeed: seed });
  });

  it('nats login - TLS from the SDK: PEM text and files; the environment only without tls', () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, 'CA-PEM');
    expect(natsOptionsFromSdk('nats://h:1', { tls: { caFile: ca, cert: 'CERT-PEM', key: 'KEY-PEM' } }, {}).tls).to.deep.equal({ ca: 'CA-PEM', cert: 'CERT-PEM', key: 'KEY-PEM' });
    expect(natsOptionsFromSdk('nats://h:1', {}, { LARS_NATS_TLS_CA: ca }).tls).to.deep.equal({ ca: 'CA-PEM' });
    expect(natsOptionsFromSdk('nats://h:1', { tls: { ca: 'MINE' } }, { LARS_NATS_TLS_CA: ca }).tls).to.deep.equal({ ca: 'MINE' });
    expect(() => natsOptionsFromSdk('nats://h:1', { tls: { caFile: join(dir, 'none.pem') } }, {})).to.throw(ConfigError, /cannot read the NATS TLS CA file/);
  });

  it('nats login - the config reads the NKey seed and creds files and refuses what they are not', () => {
    const seedFile = join(dir, 'cfg.nk');
    writeFileSync(seedFile, `${seed}\n`);
    expect(natsOptionsFromConfig({ ...defaultConfig(), natsNkey: seedFile })).to.include({ nkeySeed: seed, hint: NatsHint.cli });
    const notSeed = join(dir, 'bad.nk');
    writeFileSync(notSeed, 'SUNOTASEED\n');
    expect(() => natsOptionsFromConfig({ ...defaultConfig(), natsNkey: notSeed })).to.throw(ConfigError, /holds no valid NATS user seed/);
    expect(() => natsOptionsFromConfig({ ...defaultConfig(), natsNkey: join(dir, 'missing.nk') })).to.throw(ConfigError, /cannot read the NATS NKey seed file/);
    const creds = join(dir, 'u.creds');
    writeFileSync(creds, `-----BEGIN NATS USER JWT-----\neyJhbGciOi.eyJqdGkiOi.c2ln\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`);
    expect(natsOptionsFromConfig({ ...defaultConfig(), natsCreds: creds }).creds).to.contain(seed);
    const notCreds = join(dir, 'n.creds');
    writeFileSync(notCreds, 'hello\n');
    expect(() => natsOptionsFromConfig({ ...defaultConfig(), natsCreds: notCreds })).to.throw(ConfigError, /is not a \.creds file/);
  });

  it('nats login - two ways to log in at once, or URLs with different credentials, are refused before connecting', async () => {
    const refused = async (p: Promise<unknown>): Promise<Error> => {
      try {
        await p;
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected a refusal');
    };
    let e = await refused(connectNats({ url: 'nats://127.0.0.1:1', user: 'u', pass: 'p', token: 't' }));
    expect(e).to.be.instanceOf(ConfigError);
    expect(e.message).to.match(/a user and password and a token are both set/).and.contain('--nats-token');
    e = await refused(connectNats({ url: 'nats://127.0.0.1:1', token: 't', nkeySeed: seed, hint: NatsHint.sdk }));
    expect(e.message).to.contain('nkeySeedFile').and.not.contain('--nats');
    e = await refused(connectNats({ url: 'nats://a:pw1@127.0.0.1:1,nats://a:pw2@127.0.0.1:2' }));
    expect(e).to.be.instanceOf(ConfigError);
    expect(e.message).to.contain('different credentials').and.not.contain('pw1').and.not.contain('pw2');
  });

  it('nats login - an unreachable server with credentials in its URL is named without them', async () => {
    let e: Error | undefined;
    try {
      await connectNats({ url: 'nats://admin:hunter2@127.0.0.1:1', reconnect: false, timeoutMs: 1000 });
    } catch (err) {
      e = err as Error;
    }
    expect(e).to.be.instanceOf(NatsUnreachableError);
    expect(e!.message).to.contain('nats://admin:***@127.0.0.1:1').and.not.contain('hunter2');
  });
});
