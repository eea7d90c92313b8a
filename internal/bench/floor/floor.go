// Package floor holds the crypto floor benchmark of issue 12: the bare
// private-key operations that one enrollment cannot do without, timed with
// nothing around them, so that a server's CPU per enrollment can be put
// against it as a ratio from the same run on the same machine.
//
//	go test -run '^$' -bench 'BenchmarkCryptoFloor' -benchtime 200x -count 5 ./internal/bench/floor
//
// Sub-benchmarks (scripts/bench takes the minimum ns/op of each):
//
//   - default: scepter's default SCEP configuration, a P-256 issuing CA and
//     a separate RSA-2048 RA: one RSA-2048 PKCS #1 v1.5 decryption (the RA
//     unwraps the request envelope's AES-128 content key), one RSA-2048
//     PKCS #1 v1.5 SHA-256 signature (the RA signs the CertRep) and one
//     ECDSA P-256 SHA-256 signature (the CA signs the certificate).
//   - rsa-ca: --ca-key-type rsa2048 --scep-ra ca (also step-ca's SCEP with
//     an RSA-2048 intermediate): one RSA-2048 decryption and two RSA-2048
//     signatures (certificate and CertRep).
//   - default-go, rsa-ca-go: the same with Go's crypto/rsa (serve
//     --rsa-backend go). Without -go the RSA operations go through OpenSSL
//     when libcrypto.so.3 loads, as serve's default --rsa-backend auto
//     does; the benchmark prints which ("rsa-backend: OpenSSL 3.0.19").
//   - est-default: EST simpleenroll with the default P-256 CA, as the EST
//     rows measure it (kept-alive connections, TLS sessions resumed): one
//     ECDSA P-256 signature, the certificate's. A full handshake would add
//     one more (CertificateVerify, or the ServerKeyExchange of TLS 1.2),
//     but the rows make almost none, so counting it would flatter them.
//
// Each reports ms/enroll besides ns/op (the same figure). BenchmarkCryptoOps
// times each operation alone. BenchmarkChecksFloor (default, rsa-ca) times
// the checks a SCEP enrollment may not skip besides them (signature
// verifications, key checks, lint, the reply's key transport): see
// checks_bench_test.go. Hashing, encoding and the symmetric
// cryptography are left out: they are part of what a server must keep
// within the target's 15 % above the floor.
package floor
