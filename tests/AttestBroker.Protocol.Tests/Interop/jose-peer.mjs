// The other side of JoseInteropTests: reads one JSON request on stdin, answers one JSON object on stdout,
// using only the npm "jose" library (an implementation independent of AttestBroker.Protocol).
import * as jose from 'jose';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const out = (o) => process.stdout.write(JSON.stringify(o));
try {
  switch (req.op) {
    case 'decrypt': {
      const key = await jose.importJWK(req.jwk, req.alg);
      const { plaintext, protectedHeader } = await jose.compactDecrypt(req.jwe, key, {
        keyManagementAlgorithms: [req.alg],
        contentEncryptionAlgorithms: ['A256GCM'],
      });
      out({ plaintext: Buffer.from(plaintext).toString('hex'), header: protectedHeader });
      break;
    }
    case 'encrypt': {
      const key = await jose.importJWK(req.jwk, req.alg);
      const jwe = await new jose.CompactEncrypt(Buffer.from(req.plaintext, 'hex'))
        .setProtectedHeader({ alg: req.alg, enc: 'A256GCM', kid: req.kid })
        .encrypt(key);
      out({ jwe });
      break;
    }
    case 'verify': {
      const { payload, protectedHeader } = await jose.jwtVerify(req.token, jose.createLocalJWKSet(req.jwks), {
        issuer: req.issuer,
        algorithms: ['ES256'],
        typ: req.typ,
        currentDate: new Date(req.now * 1000),
      });
      out({ payload, header: protectedHeader });
      break;
    }
    case 'sign': {
      const key = await jose.importJWK(req.jwk, 'ES256');
      const token = await new jose.SignJWT(req.payload)
        .setProtectedHeader({ alg: 'ES256', kid: req.kid, typ: req.typ })
        .sign(key);
      out({ token });
      break;
    }
    case 'thumbprint':
      out({ thumbprint: await jose.calculateJwkThumbprint(req.jwk, 'sha256') });
      break;
    default:
      throw new Error(`unknown op ${req.op}`);
  }
} catch (e) {
  out({ error: `${e.code ?? e.name}: ${e.message}` });
  process.exitCode = 1;
}
