// Package e2e holds the end-to-end tests of scepter: they build the real
// binary, start `scepter serve` on 127.0.0.1 in a temporary data directory
// (empty, or a copy of the one a first start of the run prepared, for tests
// that check neither a first start nor which CA they have: prepared_test.go)
// and drive it with real SCEP clients (micromdm scepclient, strongSwan pki,
// certmonger, scepter enroll), checking every issued certificate with
// `openssl verify`.
//
// The tests skip when an external client is missing, unless the environment
// sets SCEPTER_E2E_REQUIRE=1 (as scripts/test does), in which case a missing
// client is a failure. SCEPTER_BIN names a prebuilt binary to test instead of
// building ./cmd/scepter (an absolute path, or one relative to internal/e2e,
// where go test runs the package).
//
// The recipes each test uses for a real client are written out beside it:
// micromdm_test.go (scepclient, and scepter enroll against micromdm's
// scepserver), strongswan_test.go (pki --scepca / --scep), certmonger_test.go
// (a private certmonger daemon on its own socket, no D-Bus, and scep-submit).
// tap_test.go relays a client's bytes unchanged and checks what crossed the
// wire: method, Content-Type, and the envelope cipher of request and reply.
package e2e
