/**
 * Certificates for development, tests and benchmarks, made with the `openssl` command (Debian's package; `.ci/run`
 * installs it when it is missing). quay itself never makes certificates: a production server is given its own.
 *
 * Node has no API to issue an X.509 certificate (node:crypto parses them, `X509Certificate`, but does not sign
 * them), hence the command. Keys are ECDSA P-256: quick to make (a few ms each) and to handshake with.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A private key and its certificate, PEM. */
export interface KeyAndCertificate {
  key: string;
  cert: string;
}

/** A test PKI: a CA and certificates it signed, for every case a TLS test meets. */
export interface TestCertificates {
  /** The test CA (self-signed); clients trust it with `ca: ca.cert`. */
  ca: KeyAndCertificate;
  /** For `localhost` and `127.0.0.1`, valid for ten years. */
  server: KeyAndCertificate;
  /** Another one for the same names (another key, serial `CN=localhost second`): to see a certificate reload. */
  server2: KeyAndCertificate;
  /** For `localhost` and `127.0.0.1`, expired (valid during the first day of 2020 only). */
  expired: KeyAndCertificate;
  /** For `example.com` only: a host name mismatch when reached as 127.0.0.1 or localhost. */
  wrongHost: KeyAndCertificate;
  /** A client certificate (extendedKeyUsage clientAuth), for mutual TLS. */
  client: KeyAndCertificate;
  /** Self-signed for `localhost` and `127.0.0.1`, signed by no CA: `self-signed certificate` to a client. */
  selfSigned: KeyAndCertificate;
}

/** Thrown when the `openssl` command is not there. */
export class OpensslMissingError extends Error {
  override readonly name = 'OpensslMissingError';
  readonly code = 'OPENSSL_MISSING';
  constructor(cause: unknown) {
    super('the openssl command is needed to make certificates (Debian: apt-get install openssl)', { cause });
  }
}

/** Whether the `openssl` command can be run. */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let cached: TestCertificates | undefined;

/**
 * Makes (once per process, then from memory) a CA and the certificates of {@link TestCertificates}, in a
 * temporary directory removed before returning.
 * @throws OpensslMissingError without the openssl command.
 */
export function testCertificates(): TestCertificates {
  if (cached !== undefined) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'quay-certs-'));
  try {
    const ca = selfSigned(dir, 'ca', '/CN=quay test CA', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign']);
    const issuer = new TestIssuer(dir, ca);
    const local = 'DNS:localhost,IP:127.0.0.1';
    cached = {
      ca,
      server: issuer.issue('server', '/CN=localhost', { san: local }),
      server2: issuer.issue('server2', '/CN=localhost second', { san: local }),
      expired: issuer.issue('expired', '/CN=localhost expired', { san: local, startDate: '20200101000000Z', endDate: '20200102000000Z' }),
      wrongHost: issuer.issue('wronghost', '/CN=example.com', { san: 'DNS:example.com' }),
      client: issuer.issue('client', '/CN=quay test client', { extendedKeyUsage: 'clientAuth' }),
      selfSigned: selfSigned(dir, 'selfsigned', '/CN=localhost', [`subjectAltName=${local}`]),
    };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A self-signed certificate for `localhost` and `127.0.0.1` (plus `hosts`, DNS names or IPv4 addresses), valid
 * for 30 days: what `npm start -- --tls` serves. Browsers warn about it (no CA signed it).
 * @throws OpensslMissingError without the openssl command.
 */
export function selfSignedCertificate(hosts: readonly string[] = []): KeyAndCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'quay-cert-'));
  try {
    const names = ['DNS:localhost', 'IP:127.0.0.1', ...hosts.map((h) => (/^\d+\.\d+\.\d+\.\d+$/.test(h) ? `IP:${h}` : `DNS:${h}`))];
    return selfSigned(dir, 'self', '/CN=localhost', [`subjectAltName=${[...new Set(names)].join(',')}`], 30);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new OpensslMissingError(e);
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr}`, { cause: e });
  }
}

const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function selfSigned(dir: string, name: string, subject: string, extensions: string[], days = 3650): KeyAndCertificate {
  const ext = extensions.flatMap((e) => ['-addext', e]);
  openssl(dir, ['req', '-x509', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', subject, '-days', String(days), ...ext]);
  return read(dir, name);
}

function read(dir: string, name: string): KeyAndCertificate {
  return { key: readFileSync(join(dir, `${name}.key`), 'utf8'), cert: readFileSync(join(dir, `${name}.pem`), 'utf8') };
}

/**
 * Signs certificates with a CA through `openssl ca`, the one openssl 3.0 command that takes explicit validity
 * dates (`-startdate` / `-enddate`), which an expired certificate needs.
 */
class TestIssuer {
  constructor(
    private readonly dir: string,
    ca: KeyAndCertificate,
  ) {
    writeFileSync(join(dir, 'issuer.key'), ca.key);
    writeFileSync(join(dir, 'issuer.pem'), ca.cert);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '1000\n');
  }

  issue(name: string, subject: string, options: { san?: string; extendedKeyUsage?: string; startDate?: string; endDate?: string }): KeyAndCertificate {
    const leaf = ['basicConstraints = CA:FALSE'];
    if (options.san !== undefined) leaf.push(`subjectAltName = ${options.san}`);
    if (options.extendedKeyUsage !== undefined) leaf.push(`extendedKeyUsage = ${options.extendedKeyUsage}`);
    writeFileSync(
      join(this.dir, `${name}.cnf`),
      [
        '[ ca ]',
        'default_ca = test',
        '[ test ]',
        'dir = .',
        'database = index.txt',
        'new_certs_dir = .',
        'serial = serial',
        'default_md = sha256',
        'policy = any',
        'copy_extensions = none',
        'unique_subject = no',
        'x509_extensions = leaf',
        '[ any ]',
        'commonName = supplied',
        '[ leaf ]',
        ...leaf,
        '',
      ].join('\n'),
    );
    openssl(this.dir, ['req', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    const validity =
      options.startDate !== undefined && options.endDate !== undefined
        ? ['-startdate', options.startDate, '-enddate', options.endDate]
        : ['-days', '3650'];
    openssl(this.dir, ['ca', '-batch', '-config', `${name}.cnf`, '-cert', 'issuer.pem', '-keyfile', 'issuer.key', '-in', `${name}.csr`, '-out', `${name}.pem`, '-notext', ...validity]);
    return read(this.dir, name);
  }
}
