// Checks a real grant from the broker with npm "jose" only (IndependentJoseTests in AttestBroker.Server.Tests).
// Reads one JSON request on stdin:
//   { jwe, alg, privateJwk, publicJwk, token, jwks, issuer, typ, now }
// Decrypts the JWE (alg must be the expected one, enc A256GCM), verifies the result token against the broker's
// JWKS (ES256, iss, typ, exp = iat + 300 s, not expired at `now`), and checks that cnf.jkt is the RFC 7638
// SHA-256 thumbprint jose computes for publicJwk. Answers one JSON object on stdout; exit code 1 with {error} on
// any refusal.
import * as jose from 'jose';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const fail = (message) => {
  const e = new Error(message);
  e.code = 'BROKER_CHECK';
  throw e;
};

try {
  const key = await jose.importJWK(req.privateJwk, req.alg);
  const { plaintext, protectedHeader } = await jose.compactDecrypt(req.jwe, key, {
    keyManagementAlgorithms: [req.alg],
    contentEncryptionAlgorithms: ['A256GCM'],
  });
  if (protectedHeader.alg !== req.alg) fail(`JWE alg is ${protectedHeader.alg}, expected ${req.alg}`);
  if (protectedHeader.enc !== 'A256GCM') fail(`JWE enc is ${protectedHeader.enc}, expected A256GCM`);

  const { payload, protectedHeader: tokenHeader } = await jose.jwtVerify(req.token, jose.createLocalJWKSet(req.jwks), {
    issuer: req.issuer,
    algorithms: ['ES256'],
    typ: req.typ,
    requiredClaims: ['iss', 'iat', 'exp', 'cnf'],
    currentDate: new Date(req.now * 1000),
  });
  if (payload.exp - payload.iat !== 300) fail(`token lifetime is ${payload.exp - payload.iat} s, expected 300 s`);
  const thumbprint = await jose.calculateJwkThumbprint(req.publicJwk, 'sha256');
  if (payload.cnf?.jkt !== thumbprint) fail(`cnf.jkt ${payload.cnf?.jkt} is not the key's RFC 7638 thumbprint ${thumbprint}`);

  process.stdout.write(JSON.stringify({
    plaintext: Buffer.from(plaintext).toString('hex'),
    jweHeader: protectedHeader,
    tokenHeader,
    payload,
    thumbprint,
  }));
} catch (e) {
  process.stdout.write(JSON.stringify({ error: `${e.code ?? e.name}: ${e.message}` }));
  process.exitCode = 1;
}
